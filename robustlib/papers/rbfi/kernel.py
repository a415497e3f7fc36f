"""The fast RBFI layer: the scaled infinity-norm distance without the (B, out, in) tensor.

Every RBFI unit j computes ``z[b, j] = max_i s[b, j, i]`` with ``s = (u[j, i] * (x[b, i] - w[j, i]))**2``
and then ``exp(-z)``. The obvious implementation broadcasts ``s`` as a (B, out, in) tensor: for a
784 -> 512 layer at batch 100 that is 40 M floats per intermediate, and forward+backward takes
hundreds of times longer than an ``nn.Linear`` of the same shape. This module computes ``z`` and
both backward modes without that tensor:

* ``pseudo``: the paper's shared feedback, dz/ds_i = e^{s_i - z} (1 at the argmax, eq. 11);
* ``true``: the true derivative of the max, which sends the gradient to the (first) argmax only.

Backends (``scaled_linf(..., backend=...)``):

``kernel``   a small C++ kernel (GCC vector extensions, one pass over (b, j, i) with registers only),
             compiled once per machine with the system C++ compiler into ``_build/kernels/`` and
             called through ``ctypes`` from a thread pool (ctypes releases the GIL; each thread owns
             a block of output units, so results are deterministic). CPU, float32/float64.
``chunked``  plain PyTorch on slices of the batch sized to bound memory: any device, no compiler.
``triton``   fused Triton kernels (``triton.py``) for CUDA float32, used only after a self-check
             against ``chunked`` on the device.
``naive``    the broadcast version through the autograd Functions ``SharedFeedbackMax`` /
             ``torch.max`` (the reference code's way); kept for tests and the benchmark.
``auto``     ``kernel`` on the CPU when the compiler is there, ``triton`` on a GPU when its
             self-check passes, else ``chunked``.

The true-gradient backward needs only the argmax per (b, j): it is a gather/scatter in PyTorch for
every backend. ``literal_scaled_linf`` is a per-unit Python loop used by the tests as ground truth.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

MODES = ("pseudo", "true")
BACKENDS = ("auto", "kernel", "triton", "chunked", "naive")

# --- the C++ kernel ------------------------------------------------------------------------------

SOURCE = r"""
// z[b,j] = max_i (u[j,i] (x[b,i] - w[j,i]))^2 and the pseudogradient backward, row-major arrays.
// Each call handles output units j in [j0, j1); callers run disjoint ranges on different threads.
#include <cstdint>
#include <cstring>
#include <cmath>

template <typename T> struct VT;
template <> struct VT<float> {
    typedef float v __attribute__((vector_size(32)));
    typedef int32_t vi __attribute__((vector_size(32)));
    static const int N = 8;
};
template <> struct VT<double> {
    typedef double v __attribute__((vector_size(32)));
    typedef int64_t vi __attribute__((vector_size(32)));
    static const int N = 4;
};

template <typename V, typename T> static inline V load(const T* p) { V r; std::memcpy(&r, p, sizeof(V)); return r; }
template <typename V, typename T> static inline void store(T* p, V r) { std::memcpy(p, &r, sizeof(V)); }
template <typename V, typename T> static inline V splat(T a) {
    V r;
    for (unsigned k = 0; k < sizeof(V) / sizeof(T); ++k) r[k] = a;
    return r;
}

#if defined(__AVX__)
static inline VT<float>::v vmax(VT<float>::v a, VT<float>::v b) { return __builtin_ia32_maxps256(a, b); }
static inline VT<double>::v vmax(VT<double>::v a, VT<double>::v b) { return __builtin_ia32_maxpd256(a, b); }
#else
static inline VT<float>::v vmax(VT<float>::v a, VT<float>::v b) { return a > b ? a : b; }
static inline VT<double>::v vmax(VT<double>::v a, VT<double>::v b) { return a > b ? a : b; }
#endif

// 2^y for y <= 0, clamped so the result stays a normal number. y = k + f with |f| <= 1/2 and
// 2^f = e^{f ln 2} by its Taylor series: degree 6 for float (relative error < 1.5e-7), degree 13
// for double (< 1e-16).
static inline VT<float>::v vexp2(VT<float>::v y) {
    typedef VT<float>::v V; typedef VT<float>::vi VI;
    y = vmax(y, splat<V>(-126.0f));
    const V magic = splat<V>(12582912.0f);  // 1.5 * 2^23: adding and subtracting rounds to an integer
    V k = (y + magic) - magic;
    V f = y - k;
    V p = splat<V>(1.5403530393381610e-4f);
    p = p * f + splat<V>(1.3333558146428443e-3f);
    p = p * f + splat<V>(9.6181291076284772e-3f);
    p = p * f + splat<V>(5.5504108664821580e-2f);
    p = p * f + splat<V>(2.4022650695910071e-1f);
    p = p * f + splat<V>(6.9314718055994531e-1f);
    p = p * f + splat<V>(1.0f);
    VI bits = (__builtin_convertvector(k, VI) + 127) << 23;
    V scale; std::memcpy(&scale, &bits, sizeof(V));
    return p * scale;
}

static inline VT<double>::v vexp2(VT<double>::v y) {
    typedef VT<double>::v V; typedef VT<double>::vi VI;
    y = vmax(y, splat<V>(-1022.0));
    const V magic = splat<V>(6755399441055744.0);  // 1.5 * 2^52
    V k = (y + magic) - magic;
    V f = y - k;
    static const double c[14] = {1.0, 6.931471805599453094e-1, 2.402265069591007123e-1, 5.550410866482157995e-2,
                                 9.618129107628477161e-3, 1.333355814642844343e-3, 1.540353039338160835e-4,
                                 1.525273380405984124e-5, 1.321548679014430951e-6, 1.017808600923969914e-7,
                                 7.054911620801123282e-9, 4.445538271870811528e-10, 2.567843599348820413e-11,
                                 1.369148885390412998e-12};
    V p = splat<V>(c[13]);
    for (int q = 12; q >= 0; --q) p = p * f + splat<V>(c[q]);
    VI bits = (__builtin_convertvector(k, VI) + 1023) << 52;
    V scale; std::memcpy(&scale, &bits, sizeof(V));
    return p * scale;
}

static inline float sexp2(float y) { return std::exp2(y < -126.0f ? -126.0f : y); }
static inline double sexp2(double y) { return std::exp2(y < -1022.0 ? -1022.0 : y); }

// ---- forward: z and, when arg != nullptr, the first index reaching the max ----------------------
template <typename T>
static void forward(const T* x, const T* w, const T* u, T* z, int64_t* arg, int64_t B, int64_t m, int64_t n,
                    int64_t j0, int64_t j1) {
    typedef typename VT<T>::v V;
    const int N = VT<T>::N;
    const int64_t nv = n - n % N;
    for (int64_t j = j0; j < j1; ++j) {
        const T* wj = w + j * n;
        const T* uj = u + j * n;
        for (int64_t b = 0; b < B; ++b) {
            const T* xb = x + b * n;
            V mx = splat<V>(T(-1));
            T best = T(-1);
            if (!arg) {
                for (int64_t i = 0; i < nv; i += N) {
                    V t = load<V>(uj + i) * (load<V>(xb + i) - load<V>(wj + i));
                    mx = vmax(mx, t * t);
                }
                for (int k = 0; k < N; ++k) best = mx[k] > best ? mx[k] : best;
                for (int64_t i = nv; i < n; ++i) {
                    T t = uj[i] * (xb[i] - wj[i]);
                    best = t * t > best ? t * t : best;
                }
            } else {
                // per lane: running max and the (first) index where it was reached; indices are
                // carried as floating point numbers (exact below 2^24)
                V ix = splat<V>(T(0)), cur;
                for (int k = 0; k < N; ++k) cur[k] = T(k);
                const V step = splat<V>(T(N));
                for (int64_t i = 0; i < nv; i += N) {
                    V t = load<V>(uj + i) * (load<V>(xb + i) - load<V>(wj + i));
                    V s = t * t;
                    auto gt = s > mx;
                    mx = gt ? s : mx;
                    ix = gt ? cur : ix;
                    cur += step;
                }
                int64_t bi = 0;
                for (int k = 0; k < N; ++k) {
                    int64_t ik = (int64_t)ix[k];
                    if (mx[k] > best || (mx[k] == best && ik < bi)) { best = mx[k]; bi = ik; }
                }
                for (int64_t i = nv; i < n; ++i) {
                    T t = uj[i] * (xb[i] - wj[i]);
                    if (t * t > best) { best = t * t; bi = i; }
                }
                arg[b * m + j] = bi;
            }
            z[b * m + j] = best;
        }
    }
}

// ---- pseudogradient backward -------------------------------------------------------------------
// gz[b,j] = dL/dz. Shared feedback dz/ds_i = e^{s_i - z} = 2^{(s_i - z) log2 e}; with t = u (x - w):
// ds/dx = 2 u t, ds/dw = -2 u t, ds/du = 2 t (x - w). gx (B, n) belongs to this caller alone; the
// rows j0..j1 of gw, gu are written by this caller only. All outputs are accumulated into.
// R batch rows per pass, so w_j, u_j, gw_j, gu_j are loaded once for R rows.
template <typename T, bool GX, bool GP>
static void backward(const T* x, const T* w, const T* u, const T* z, const T* gz, T* gx, T* gw, T* gu,
                     int64_t B, int64_t m, int64_t n, int64_t j0, int64_t j1) {
    typedef typename VT<T>::v V;
    const int N = VT<T>::N;
    const int R = 4;
    const T L2E = T(1.442695040888963407359924681001892137);
    const int64_t nv = n - n % N;
    const int64_t Bv = B - B % R;
    const V l2e = splat<V>(L2E);
    for (int64_t j = j0; j < j1; ++j) {
        const T* wj = w + j * n;
        const T* uj = u + j * n;
        T* gwj = GP ? gw + j * n : nullptr;
        T* guj = GP ? gu + j * n : nullptr;
        for (int64_t b = 0; b < Bv; b += R) {
            V c2[R], zl[R];
            const T* xb[R];
            T* gxb[R];
            for (int r = 0; r < R; ++r) {
                c2[r] = splat<V>(T(2) * gz[(b + r) * m + j]);
                zl[r] = splat<V>(z[(b + r) * m + j] * L2E);
                xb[r] = x + (b + r) * n;
                gxb[r] = GX ? gx + (b + r) * n : nullptr;
            }
            for (int64_t i = 0; i < nv; i += N) {
                V uu = load<V>(uj + i), ww = load<V>(wj + i);
                V sw = splat<V>(T(0)), su = splat<V>(T(0));
                for (int r = 0; r < R; ++r) {
                    V d = load<V>(xb[r] + i) - ww;
                    V t = uu * d;
                    V a = c2[r] * vexp2(t * t * l2e - zl[r]) * t;  // 2 gz e^{s - z} t
                    V au = a * uu;
                    if (GX) store<V>(gxb[r] + i, load<V>(gxb[r] + i) + au);
                    if (GP) { sw -= au; su += a * d; }
                }
                if (GP) {
                    store<V>(gwj + i, load<V>(gwj + i) + sw);
                    store<V>(guj + i, load<V>(guj + i) + su);
                }
            }
        }
        // the rows left over by the blocking, and the columns left over by the vector width
        for (int64_t b = 0; b < B; ++b) {
            const T c = gz[b * m + j], zz = z[b * m + j] * L2E;
            const T* xr = x + b * n;
            for (int64_t i = (b < Bv ? nv : 0); i < n; ++i) {
                T d = xr[i] - wj[i];
                T t = uj[i] * d;
                T a = T(2) * c * sexp2(t * t * L2E - zz) * t;
                if (GX) gx[b * n + i] += a * uj[i];
                if (GP) { gwj[i] -= a * uj[i]; guj[i] += a * d; }
            }
        }
    }
}

template <typename T>
static void backward_any(const T* x, const T* w, const T* u, const T* z, const T* gz, T* gx, T* gw, T* gu,
                         int64_t B, int64_t m, int64_t n, int64_t j0, int64_t j1) {
    if (gx && gw) backward<T, true, true>(x, w, u, z, gz, gx, gw, gu, B, m, n, j0, j1);
    else if (gx) backward<T, true, false>(x, w, u, z, gz, gx, gw, gu, B, m, n, j0, j1);
    else if (gw) backward<T, false, true>(x, w, u, z, gz, gx, gw, gu, B, m, n, j0, j1);
}

extern "C" {
int rbfi_abi_version() { return 1; }
void rbfi_forward_f32(const float* x, const float* w, const float* u, float* z, int64_t* arg, int64_t B,
                      int64_t m, int64_t n, int64_t j0, int64_t j1) { forward<float>(x, w, u, z, arg, B, m, n, j0, j1); }
void rbfi_forward_f64(const double* x, const double* w, const double* u, double* z, int64_t* arg, int64_t B,
                      int64_t m, int64_t n, int64_t j0, int64_t j1) { forward<double>(x, w, u, z, arg, B, m, n, j0, j1); }
void rbfi_backward_f32(const float* x, const float* w, const float* u, const float* z, const float* gz, float* gx,
                       float* gw, float* gu, int64_t B, int64_t m, int64_t n, int64_t j0, int64_t j1) {
    backward_any<float>(x, w, u, z, gz, gx, gw, gu, B, m, n, j0, j1);
}
void rbfi_backward_f64(const double* x, const double* w, const double* u, const double* z, const double* gz,
                       double* gx, double* gw, double* gu, int64_t B, int64_t m, int64_t n, int64_t j0, int64_t j1) {
    backward_any<double>(x, w, u, z, gz, gx, gw, gu, B, m, n, j0, j1);
}
}
"""

FLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-fno-math-errno", "-shared", "-fPIC", "-std=c++17"]
_lib: ctypes.CDLL | None = None
_lib_error: str | None = None
_lib_lock = threading.Lock()


def _compiler() -> str | None:
    for cand in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if cand and shutil.which(cand):
            return cand
    return None


def _cpu_key() -> str:
    """What ``-march=native`` depends on: a .so built on one CPU is never loaded on another."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features", "model name")):
                    flags += line
    except OSError:
        pass
    return platform.machine() + platform.system() + flags


def _build_dir() -> Path:
    from ... import paths

    for d in (paths.build_dir() / "kernels", Path(tempfile.gettempdir()) / "robustlib-kernels"):
        try:
            d.mkdir(parents=True, exist_ok=True)
            if os.access(d, os.W_OK):
                return d
        except OSError:
            continue
    raise OSError("no writable folder for the compiled RBFI kernel")


def _compile(cxx: str, out: Path) -> None:
    """Compile SOURCE into ``out`` atomically (several processes may build at once)."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        src = Path(tmp) / "rbfi_kernel.cpp"
        src.write_text(SOURCE)
        so = Path(tmp) / out.name
        flags = FLAGS
        res = subprocess.run([cxx, *flags, "-o", str(so), str(src)], capture_output=True, text=True, timeout=300)
        if res.returncode != 0:  # an older compiler may not know -march=native: retry portable
            flags = [f for f in FLAGS if f != "-march=native"]
            res = subprocess.run([cxx, *flags, "-o", str(so), str(src)], capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            raise RuntimeError(f"{cxx} failed:\n{res.stderr[-2000:]}")
        os.replace(so, out)


def load_library() -> ctypes.CDLL | None:
    """The compiled kernel (built on first use, cached per machine), or None without a compiler.

    ``ROBUSTLIB_RBFI_BACKEND=chunked`` in the environment disables it.
    """
    global _lib, _lib_error
    if _lib is not None or _lib_error is not None:
        return _lib
    with _lib_lock:
        if _lib is not None or _lib_error is not None:
            return _lib
        if os.environ.get("ROBUSTLIB_RBFI_BACKEND", "") == "chunked":
            _lib_error = "disabled by ROBUSTLIB_RBFI_BACKEND=chunked"
            return None
        cxx = _compiler()
        if cxx is None:
            _lib_error = "no C++ compiler (g++, c++, clang++ or $CXX) found"
            return None
        try:
            version = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
            key = hashlib.sha256("\n".join([SOURCE, " ".join(FLAGS), version, _cpu_key()]).encode()).hexdigest()[:16]
            path = _build_dir() / f"rbfi-{key}.so"
            if not path.exists():
                _compile(cxx, path)
            lib = ctypes.CDLL(str(path))
            P, N = ctypes.c_void_p, ctypes.c_int64  # pointer, size
            for name in ("rbfi_forward_f32", "rbfi_forward_f64"):
                getattr(lib, name).argtypes = [P, P, P, P, P, N, N, N, N, N]
                getattr(lib, name).restype = None
            for name in ("rbfi_backward_f32", "rbfi_backward_f64"):
                getattr(lib, name).argtypes = [P, P, P, P, P, P, P, P, N, N, N, N, N]
                getattr(lib, name).restype = None
            if lib.rbfi_abi_version() != 1:
                raise RuntimeError("stale kernel library")
            _lib = lib
        except (OSError, RuntimeError, subprocess.SubprocessError) as err:
            _lib_error = f"could not build the RBFI kernel: {err}"
    return _lib


def kernel_status() -> str:
    """One line for the notebook: which backend ``auto`` uses on the CPU, and why."""
    lib = load_library()
    return "C++ kernel (compiled, cached in _build/kernels)" if lib is not None else f"chunked PyTorch ({_lib_error})"


_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _threads() -> int:
    return max(1, torch.get_num_threads())


def _run(fn, m: int, work: int, make_args) -> None:
    """Call ``fn(*make_args(t, j0, j1))`` on disjoint unit ranges, in parallel when worth it."""
    global _pool, _pool_size
    threads = min(_threads(), m) if work >= (1 << 18) else 1
    cuts = [m * t // threads for t in range(threads + 1)]
    if threads == 1:
        fn(*make_args(0, 0, m))
        return
    if _pool is None or _pool_size != threads:
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rbfi")
        _pool_size = threads
    futures = [_pool.submit(fn, *make_args(t, cuts[t], cuts[t + 1])) for t in range(threads)]
    for f in futures:
        f.result()


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _kernel_ok(*ts: torch.Tensor) -> bool:
    return (
        ts[0].device.type == "cpu"
        and ts[0].dtype in (torch.float32, torch.float64)
        and all(t.dtype == ts[0].dtype for t in ts)
        and load_library() is not None
    )


def _kernel_forward(x, w, u, want_arg: bool):
    lib = load_library()
    B, n = x.shape
    m = w.shape[0]
    z = torch.empty(B, m, dtype=x.dtype)
    arg = torch.empty(B, m, dtype=torch.int64) if want_arg else None
    fn = lib.rbfi_forward_f32 if x.dtype == torch.float32 else lib.rbfi_forward_f64
    _run(
        fn,
        m,
        B * m * n,
        lambda t, j0, j1: (x.data_ptr(), w.data_ptr(), u.data_ptr(), z.data_ptr(), _ptr(arg), B, m, n, j0, j1),
    )
    return z, arg


def _kernel_backward(x, w, u, z, gz, need_x: bool, need_p: bool):
    lib = load_library()
    B, n = x.shape
    m = w.shape[0]
    threads = min(_threads(), m) if B * m * n >= (1 << 18) else 1
    gxs = [torch.zeros(B, n, dtype=x.dtype) for _ in range(threads)] if need_x else None
    gw = torch.zeros_like(w) if need_p else None
    gu = torch.zeros_like(u) if need_p else None
    fn = lib.rbfi_backward_f32 if x.dtype == torch.float32 else lib.rbfi_backward_f64
    _run(
        fn,
        m,
        B * m * n,
        lambda t, j0, j1: (
            x.data_ptr(),
            w.data_ptr(),
            u.data_ptr(),
            z.data_ptr(),
            gz.data_ptr(),
            _ptr(gxs[t]) if gxs else None,
            _ptr(gw),
            _ptr(gu),
            B,
            m,
            n,
            j0,
            j1,
        ),
    )
    gx = None
    if gxs:
        gx = gxs[0]
        for g in gxs[1:]:  # fixed order: deterministic
            gx += g
    return gx, gw, gu


# --- the Triton backend (GPU) ----------------------------------------------------------------------

_triton_checked: dict[str, bool] = {}


def _triton_usable(x: torch.Tensor) -> bool:
    """CUDA float32 (or any float32 under TRITON_INTERPRET=1, for the tests), after a self-check."""
    if x.dtype != torch.float32 or os.environ.get("ROBUSTLIB_RBFI_BACKEND", "") == "chunked":
        return False
    interpret = os.environ.get("TRITON_INTERPRET", "0") == "1"
    if x.device.type != "cuda" and not interpret:
        return False
    key = str(x.device)
    if key not in _triton_checked:
        _triton_checked[key] = _triton_self_check(x.device)
    return _triton_checked[key]


def _triton_self_check(device: torch.device) -> bool:
    """Compare the Triton kernels with the chunked version on random data (ties included)."""
    import warnings

    try:
        from . import triton as gpu

        g = torch.Generator().manual_seed(0)
        x, w, u = torch.rand(37, 70, generator=g), torch.rand(21, 70, generator=g), torch.rand(21, 70, generator=g) * 3
        x[0, :9], w[0, :9], u[0, :9] = 0.0, 1.0, 3.0  # ties at s = 9
        gz = torch.randn(37, 21, generator=g)
        x, w, u, gz = (t.to(device) for t in (x, w, u, gz))
        z, arg = gpu.forward(x, w, u, True)
        zr, ar = _chunked_forward(x, w, u, True)
        ok = torch.allclose(z, zr, rtol=1e-6, atol=0) and torch.equal(arg, ar)
        got = gpu.backward(x, w, u, zr, gz, True, True)
        ref = _chunked_backward(x, w, u, zr, gz, True, True)
        ok &= all(((a - b).abs().max() <= 1e-4 * b.abs().max()).item() for a, b in zip(got, ref))
        if not ok:
            warnings.warn("RBFI Triton kernels disagree with the PyTorch version on this device; using 'chunked'")
        return bool(ok)
    except Exception as err:  # no Triton, no compiler, unsupported GPU...: the chunked path always works
        warnings.warn(f"RBFI Triton kernels unavailable ({type(err).__name__}: {err}); using 'chunked'")
        return False


# --- the chunked PyTorch backend (any device) ------------------------------------------------------


def _chunk_rows(B: int, m: int, n: int, device: torch.device) -> int:
    """Batch rows per slice so one (rows, m, n) intermediate stays below a memory budget."""
    budget = (1 << 26) if device.type == "cuda" else (1 << 22)  # elements: 256 MB GPU, 16 MB CPU
    return max(1, min(B, budget // max(1, m * n)))


def _chunked_forward(x, w, u, want_arg: bool):
    B, n = x.shape
    m = w.shape[0]
    rows = _chunk_rows(B, m, n, x.device)
    zs, args = [], []
    for s in range(0, B, rows):
        t = u * (x[s : s + rows, None, :] - w)  # (rows, m, n)
        sq = t * t
        if want_arg:
            zc, ac = sq.max(dim=2)  # first index of the max
            zs.append(zc)
            args.append(ac)
        else:
            zs.append(sq.amax(dim=2))
    return torch.cat(zs), (torch.cat(args) if want_arg else None)


def _chunked_backward(x, w, u, z, gz, need_x: bool, need_p: bool):
    B, n = x.shape
    m = w.shape[0]
    rows = _chunk_rows(B, m, n, x.device)
    gx = torch.empty_like(x) if need_x else None
    gw = torch.zeros_like(w) if need_p else None
    gu = torch.zeros_like(u) if need_p else None
    for s in range(0, B, rows):
        d = x[s : s + rows, None, :] - w  # (rows, m, n)
        t = u * d
        a = (2 * gz[s : s + rows, :, None]) * torch.exp(t * t - z[s : s + rows, :, None]) * t  # 2 gz e^{s-z} t
        au = a * u
        if need_x:
            gx[s : s + rows] = au.sum(1)
        if need_p:
            gw -= au.sum(0)
            gu += (a * d).sum(0)
    return gx, gw, gu


def _true_backward(x, w, u, arg, gz, need_x: bool, need_p: bool):
    """Gradient of z = max_i s_i sent to the first argmax only (what autograd of torch.max does)."""
    m = w.shape[0]
    rows = torch.arange(m, device=x.device).expand_as(arg)  # (B, m): unit index
    xa = x.gather(1, arg)  # (B, m): x[b, argmax]
    wa, ua = w[rows, arg], u[rows, arg]
    d = xa - wa
    a = 2 * gz * ua * d  # 2 gz t
    gx = torch.zeros_like(x).scatter_add_(1, arg, a * ua) if need_x else None
    gw = gu = None
    if need_p:
        # gw[j, arg[b, j]] += -a u: scatter along dim 1 of the (m, n) matrix, one row per unit
        gw = torch.zeros_like(w).scatter_add_(1, arg.T, (-a * ua).T)
        gu = torch.zeros_like(u).scatter_add_(1, arg.T, (a * d).T)
    return gx, gw, gu


# --- the autograd Functions ------------------------------------------------------------------------


def _impl(name: str):
    if name == "kernel":
        return _kernel_forward, _kernel_backward
    if name == "triton":
        from . import triton as gpu

        return gpu.forward, gpu.backward
    return _chunked_forward, _chunked_backward


class ScaledLinf(torch.autograd.Function):
    """z = max_i (u (x - w))_i^2 for every (batch row, unit) pair; backward per ``mode``."""

    @staticmethod
    def forward(ctx, x, w, u, mode: str, backend: str):
        x, w, u = x.contiguous(), w.contiguous(), u.contiguous()
        z, arg = _impl(backend)[0](x, w, u, mode == "true")
        ctx.mode, ctx.backend = mode, backend
        ctx.save_for_backward(x, w, u, z, arg if arg is not None else z.new_empty(0))
        return z

    @staticmethod
    def backward(ctx, gz):
        x, w, u, z, arg = ctx.saved_tensors
        need_x = ctx.needs_input_grad[0]
        need_p = ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        if not (need_x or need_p):
            return None, None, None, None, None
        gz = gz.contiguous()
        if ctx.mode == "true":
            gx, gw, gu = _true_backward(x, w, u, arg, gz, need_x, need_p)
        else:
            gx, gw, gu = _impl(ctx.backend)[1](x, w, u, z, gz, need_x, need_p)
        return (
            gx if need_x else None,
            gw if ctx.needs_input_grad[1] else None,
            gu if ctx.needs_input_grad[2] else None,
            None,
            None,
        )


class SharedFeedbackMax(torch.autograd.Function):
    """max over the last axis; backward g * exp(s - max) for every input (paper eq. 11)."""

    @staticmethod
    def forward(ctx, s):
        z = s.amax(-1)
        ctx.save_for_backward(s, z)
        return z

    @staticmethod
    def backward(ctx, g):
        s, z = ctx.saved_tensors
        return g[..., None] * torch.exp(s - z[..., None])


class LargeAttractorExp(torch.autograd.Function):
    """exp(-z); backward -g / sqrt(1 + z) instead of -g exp(-z) (paper eq. 9)."""

    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return torch.exp(-z)

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return -g / torch.sqrt(1 + z)


def _check(x: torch.Tensor, w: torch.Tensor, u: torch.Tensor, mode: str, backend: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown gradient mode {mode!r}; valid: {', '.join(MODES)}")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if x.ndim != 2 or w.ndim != 2 or w.shape != u.shape or x.shape[1] != w.shape[1]:
        raise ValueError(f"need x (B, n), w and u (m, n); got {tuple(x.shape)}, {tuple(w.shape)}, {tuple(u.shape)}")


def naive_scaled_linf(x: torch.Tensor, w: torch.Tensor, u: torch.Tensor, mode: str = "pseudo") -> torch.Tensor:
    """The broadcast (B, m, n) version, as in the reference code (memory grows as B * m * n)."""
    s = (u[None] * (x[:, None, :] - w[None])) ** 2  # (B, m, n)
    return SharedFeedbackMax.apply(s) if mode == "pseudo" else s.max(dim=2).values


def scaled_linf(
    x: torch.Tensor, w: torch.Tensor, u: torch.Tensor, mode: str = "pseudo", backend: str = "auto"
) -> torch.Tensor:
    """z[b, j] = max_i (u[j, i] (x[b, i] - w[j, i]))^2, shape (B, m); gradients per ``mode``."""
    _check(x, w, u, mode, backend)
    if backend == "naive":
        return naive_scaled_linf(x, w, u, mode)
    same = all(t.dtype == x.dtype and t.device == x.device for t in (w, u))
    if backend == "auto":
        backend = (
            "kernel"
            if same and _kernel_ok(x, w, u)
            else "triton"
            if same and x.device.type == "cuda" and _triton_usable(x)
            else "chunked"
        )
    elif backend == "kernel" and not (same and _kernel_ok(x, w, u)):
        raise ValueError(
            f"backend 'kernel' needs CPU float32/float64 tensors and a C++ compiler "
            f"({_lib_error or 'dtype/device mismatch'}); use 'auto' or 'chunked'"
        )
    elif backend == "triton" and not (same and _triton_usable(x)):
        raise ValueError(
            "backend 'triton' needs CUDA float32 tensors and working Triton kernels; use 'auto' or 'chunked'"
        )
    return ScaledLinf.apply(x, w, u, mode, backend)


def literal_scaled_linf(x: torch.Tensor, w: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ground truth for the tests: one loop iteration per (row, unit), in the inputs' dtype.

    Returns z (B, m) and the first index reaching the max (B, m).
    """
    B, m = x.shape[0], w.shape[0]
    z = torch.empty(B, m, dtype=x.dtype)
    arg = torch.empty(B, m, dtype=torch.int64)
    for b in range(B):
        for j in range(m):
            s = (u[j] * (x[b] - w[j])) ** 2  # (n,) the scaled squared distances of unit j
            z[b, j] = s.max()
            arg[b, j] = int(torch.nonzero(s == s.max())[0])
    return z, arg
