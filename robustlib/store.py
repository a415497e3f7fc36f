"""The artifact store: results keyed by their full configuration.

Layout: ``data/artifacts/<profile>/<notebook>/<name>-<confighash>.json`` (+ ``.safetensors`` when
the result holds tensors). ``cached(name, config, compute, ...)`` returns the stored result when
one exists for exactly this config, else calls ``compute()``, saves and returns its result. A
changed setting changes the hash, so a stale result is never reused.

A result is a (possibly nested) dict. Tensor leaves are written to safetensors, everything else to
JSON, together with provenance (git commit, profile, seed, torch version, device, wall time).
Loading never unpickles. Writes are atomic (temporary file + rename; the JSON is written last and
marks the artifact complete). ``data/artifacts/MANIFEST`` lists the sha256 of every committed
artifact (``smoke`` results are scratch and not listed); a test checks it against the files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from . import claims, paths
from .profiles import PROFILE_NAMES

MANIFEST = "MANIFEST"
VERDICTS = claims.VERDICTS
_TENSOR = "__tensor__"


# --- keys --------------------------------------------------------------------------------------


def _canonical(obj: Any) -> Any:
    """A JSON-able, order-independent form of a config (dataclasses, tuples, paths, floats)."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return _canonical(asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    raise ValueError(f"config value {obj!r} of type {type(obj).__name__} cannot be part of a key")


def config_hash(config: Mapping[str, Any]) -> str:
    text = json.dumps(_canonical(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _check_name(kind: str, value: str) -> None:
    if not value or not all(c.isalnum() or c in "-_." for c in value) or value.startswith("."):
        raise ValueError(f"{kind} {value!r} must be non-empty and use only letters, digits, '-', '_', '.'")


def artifact_dir(notebook: str, profile: str) -> Path:
    if profile not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {profile!r}; valid: {', '.join(PROFILE_NAMES)}")
    _check_name("notebook", notebook)
    return paths.artifacts_dir() / profile / notebook


def artifact_stem(name: str, config: Mapping[str, Any], *, notebook: str, profile: str, seed: int) -> Path:
    """``<dir>/<name>-<hash>`` without suffix; the seed is part of the key."""
    _check_name("artifact name", name)
    return artifact_dir(notebook, profile) / f"{name}-{config_hash({'config': config, 'seed': seed})}"


def _with(stem: Path, suffix: str) -> Path:
    """``stem`` + suffix (not ``with_suffix``: artifact names may contain dots, e.g. ``lam0.01``)."""
    return stem.parent / f"{stem.name}{suffix}"


# --- provenance --------------------------------------------------------------------------------


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(paths.root()), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(paths.root()), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: str | torch.device = "cpu") -> str:
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()} x{os.cpu_count()} threads={torch.get_num_threads()}"


def provenance(
    *, profile: str, seed: int, device: str | torch.device = "cpu", wall_time_s: float | None = None
) -> dict[str, Any]:
    return {
        "git_commit": git_commit(),
        "profile": profile,
        "seed": seed,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": device_name(device),
        "wall_time_s": None if wall_time_s is None else round(wall_time_s, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# --- (de)serialisation -------------------------------------------------------------------------


def _split(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """Move tensor leaves into ``tensors`` (keyed by path) and return the JSON remainder."""
    if isinstance(obj, torch.Tensor):
        key = prefix or "value"
        tensors[key] = obj.detach().cpu().clone()  # own storage: safetensors refuses shared memory
        return {_TENSOR: key}
    if isinstance(obj, Mapping):
        for k in obj:
            if not isinstance(k, str) or "/" in k:
                raise ValueError(f"result keys must be strings without '/', got {k!r}")
        return {k: _split(v, f"{prefix}/{k}" if prefix else k, tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split(v, f"{prefix}/{i}", tensors) for i, v in enumerate(obj)]
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj  # json writes nan/inf as NaN/Infinity and reads them back
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # numpy scalar
        return obj.item()
    raise ValueError(f"cannot store value of type {type(obj).__name__} (use tensors, numbers, strings, lists, dicts)")


def _join(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        return {k: _join(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _write_json(path: Path, obj: Any) -> None:
    _atomic_write(path, lambda p: p.write_text(json.dumps(obj, indent=1, allow_nan=True) + "\n"))


def save(
    name: str,
    config: Mapping[str, Any],
    result: Mapping[str, Any],
    *,
    notebook: str,
    profile: str,
    seed: int = 0,
    device: str | torch.device = "cpu",
    wall_time_s: float | None = None,
) -> Path:
    """Write one artifact; return the path of its JSON file."""
    if not isinstance(result, Mapping):
        raise ValueError(f"a stored result must be a dict, got {type(result).__name__}")
    stem = artifact_stem(name, config, notebook=notebook, profile=profile, seed=seed)
    tensors: dict[str, torch.Tensor] = {}
    body = _split(result, "", tensors)
    meta = {
        "name": name,
        "notebook": notebook,
        "config": _canonical(config),
        "provenance": provenance(profile=profile, seed=seed, device=device, wall_time_s=wall_time_s),
        "tensors": sorted(tensors),
        "result": body,
    }
    written = []
    js = _with(stem, ".json")
    # An old result of the same key (retrain) loses its JSON first: a write killed half-way then
    # leaves no JSON at all (recomputed next time), never an old JSON beside new tensors.
    js.unlink(missing_ok=True)
    if tensors:
        st = _with(stem, ".safetensors")
        _atomic_write(st, lambda p: save_file(tensors, str(p)))
        written.append(st)
    _write_json(js, meta)  # last: its presence marks the artifact complete
    written.append(js)
    update_manifest(written)
    _touch(stem)
    return js


TOUCH_LOG = "ROBUSTLIB_TOUCH_LOG"


def _touch(stem: Path) -> None:
    """Record a used artifact when ``$ROBUSTLIB_TOUCH_LOG`` names a file (``prune`` keeps only those)."""
    log = os.environ.get(TOUCH_LOG)
    if log:
        with open(log, "a") as f:  # one short line per append: safe from several processes
            f.write(f"{stem.resolve()}\n")


def load(
    name: str, config: Mapping[str, Any], *, notebook: str, profile: str, seed: int = 0, with_meta: bool = False
) -> Any:
    """The stored result for exactly this config, or ``None``."""
    stem = artifact_stem(name, config, notebook=notebook, profile=profile, seed=seed)
    _touch(stem)
    js = _with(stem, ".json")
    if not js.exists():
        return None
    meta = json.loads(js.read_text())
    if meta.get("name") != name or meta.get("config") != _canonical(config):
        return None  # not this result (defence in depth: the hash already encodes name and config)
    tensors: dict[str, torch.Tensor] = {}
    if meta["tensors"]:
        st = _with(stem, ".safetensors")
        if not st.exists():
            return None
        tensors = load_file(str(st))  # safetensors: no pickle
        if set(tensors) != set(meta["tensors"]):
            return None
    result = _join(meta["result"], tensors)
    return (result, meta) if with_meta else result


def cached(
    name: str,
    config: Mapping[str, Any],
    compute: Callable[[], Mapping[str, Any]],
    *,
    notebook: str,
    profile: str,
    seed: int = 0,
    device: str | torch.device = "cpu",
    retrain: bool = False,
) -> Any:
    """Return the stored result for ``config`` or compute, save and return it.

    ``retrain=True`` recomputes and overwrites. Nothing is written when ``compute`` raises.
    """
    artifact_stem(name, config, notebook=notebook, profile=profile, seed=seed)  # validate first
    if not retrain:
        hit = load(name, config, notebook=notebook, profile=profile, seed=seed)
        if hit is not None:
            return hit
    start = time.perf_counter()
    result = compute()
    wall = time.perf_counter() - start
    save(name, config, result, notebook=notebook, profile=profile, seed=seed, device=device, wall_time_s=wall)
    # Return what a later load returns (tensors on the CPU, tuples as lists): one code path.
    return load(name, config, notebook=notebook, profile=profile, seed=seed)


def checkpoint_dir(name: str, config: Mapping[str, Any], *, notebook: str, profile: str, seed: int = 0) -> Path:
    """Where training checkpoints for this artifact go (git-ignored; only needed to resume)."""
    stem = artifact_stem(name, config, notebook=notebook, profile=profile, seed=seed)
    return paths.checkpoints_dir() / profile / notebook / stem.name


# --- scorecards --------------------------------------------------------------------------------


def scorecard_path(notebook: str, profile: str) -> Path:
    return artifact_dir(notebook, profile) / "scorecard.json"


def write_scorecard(
    notebook: str, profile: str, targets: list[Mapping[str, str]], *, seed: int = 0, device: str | torch.device = "cpu"
) -> Path:
    """Write ``scorecard.json``: one row per reproduction target with an honest verdict."""
    rows = []
    for t in targets:
        missing = {"id", "claim", "paper", "ours", "verdict"} - set(t)
        if missing:
            raise ValueError(f"scorecard row {t!r} lacks {sorted(missing)}")
        if t["verdict"] not in VERDICTS:
            raise ValueError(f"verdict {t['verdict']!r} of {t['id']}: valid: {', '.join(VERDICTS)}")
        rows.append({k: str(v) for k, v in t.items()})
    path = scorecard_path(notebook, profile)
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("targets") == rows and old.get("provenance", {}).get("seed") == seed:
            return path  # same verdicts: keep the file (and its provenance) so a rerun leaves git clean
    _write_json(
        path,
        {
            "notebook": notebook,
            "profile": profile,
            "provenance": provenance(profile=profile, seed=seed, device=device),
            "targets": rows,
        },
    )
    update_manifest([path])
    return path


def load_scorecards() -> list[dict[str, Any]]:
    """Every scorecard in the store (all notebooks and profiles), sorted by notebook and profile."""
    cards = [json.loads(p.read_text()) for p in paths.artifacts_dir().glob("*/*/scorecard.json")]
    order = {p: i for i, p in enumerate(PROFILE_NAMES)}
    return sorted(cards, key=lambda c: (c["notebook"], order.get(c["profile"], 9)))


# --- manifest ----------------------------------------------------------------------------------


def _git_ignored(files: list[Path]) -> set[Path]:
    """The files git ignores (large local-only weights, see .gitignore); empty without git."""
    if not files:
        return set()
    try:
        out = subprocess.run(
            ["git", "-C", str(paths.root()), "check-ignore", "--stdin"],
            capture_output=True,
            text=True,
            timeout=30,
            input="\n".join(str(f) for f in files),
        )
    except (OSError, subprocess.SubprocessError):
        return set()
    return {Path(line).resolve() for line in out.stdout.splitlines() if line.strip()}


def _tracked(path: Path) -> bool:
    """Committed artifacts: everything except scratch ``smoke`` results and temporary files."""
    rel = path.relative_to(paths.artifacts_dir())
    return rel.parts[0] != "smoke" and not path.name.startswith(".") and path.name != MANIFEST


def _committed(files: list[Path]) -> list[Path]:
    """Tracked files that git does not ignore (what a clone of the repository holds)."""
    files = [f for f in files if _tracked(f)]
    ignored = _git_ignored(files)
    return [f for f in files if f.resolve() not in ignored]


@contextlib.contextmanager
def _manifest_lock() -> Iterator[None]:
    root = paths.artifacts_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".manifest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several notebooks may save at once
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_manifest() -> dict[str, str]:
    path = paths.artifacts_dir() / MANIFEST
    if not path.exists():
        return {}
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, rel = line.split(maxsplit=1)
            entries[rel] = digest
    return entries


def _write_manifest(entries: Mapping[str, str]) -> None:
    text = "".join(f"{digest}  {rel}\n" for rel, digest in sorted(entries.items()))
    _atomic_write(paths.artifacts_dir() / MANIFEST, lambda p: p.write_text(text))


def update_manifest(files: list[Path]) -> None:
    with _manifest_lock():
        entries = read_manifest()
        for f in _committed(files):
            entries[str(f.relative_to(paths.artifacts_dir()))] = paths.sha256(f)
        _write_manifest(entries)


def rebuild_manifest() -> int:
    """Re-list every committed artifact (after deleting stale ones by hand); returns the count."""
    with _manifest_lock():
        root = paths.artifacts_dir()
        entries = {
            str(p.relative_to(root)): paths.sha256(p) for p in _committed([p for p in root.rglob("*") if p.is_file()])
        }
        _write_manifest(entries)
    return len(entries)


def _strip(filename: str) -> str:
    return filename.removesuffix(".json").removesuffix(".safetensors")


def prune(notebook: str, profile: str, used_stems: set[str], *, dry_run: bool = False) -> list[Path]:
    """Delete this notebook's artifacts whose stem is not in ``used_stems`` (absolute paths without
    suffix, as ``_touch`` logs them); the scorecard is always kept. Returns the deleted files."""
    stale = [
        p
        for p in sorted(artifact_dir(notebook, profile).glob("*"))
        if p.is_file() and p.name != "scorecard.json" and str(p.resolve().parent / _strip(p.name)) not in used_stems
    ]
    if not dry_run:
        for p in stale:
            p.unlink()
        rebuild_manifest()
    return stale


def verify_manifest() -> list[str]:
    """Problems between MANIFEST and the files (empty list: all good)."""
    root = paths.artifacts_dir()
    entries = read_manifest()
    problems = []
    for rel, digest in sorted(entries.items()):
        p = root / rel
        if not p.exists():
            problems.append(f"listed but missing: {rel}")
        elif paths.sha256(p) != digest:
            problems.append(f"sha256 mismatch: {rel}")
    for p in sorted(_committed([p for p in root.rglob("*") if p.is_file()])):
        if str(p.relative_to(root)) not in entries:
            problems.append(f"not listed in MANIFEST: {p.relative_to(root)}")
    return problems
