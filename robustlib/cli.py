"""``python -m robustlib <command>``: fetch, run, book, verify, manifest, bench.

  fetch                      MNIST (sha256-checked) and the vendored MathJax
  run NOTEBOOK --profile P   execute one notebook with papermill (-p key value for parameters)
  book --profile P           execute every notebook at P and build the site into _build/html
  verify                     check MNIST hashes and data/artifacts/MANIFEST
  manifest                   rebuild data/artifacts/MANIFEST from the files
  bench [NAME ...]           run the benchmarks in bench/ (ratios measured in one run)
"""

from __future__ import annotations

import argparse
import runpy
import sys
import time
from pathlib import Path

from . import paths
from .profiles import PROFILE_NAMES


def _fetch(_: argparse.Namespace) -> int:
    from . import data

    data.fetch_mnist()
    data.fetch_mathjax()
    print("MNIST and MathJax are in place")
    return 0


def _run(args: argparse.Namespace) -> int:
    from . import notebooks

    src = notebooks.notebook_path(args.notebook)
    params = {"profile": args.profile, **{k: notebooks.parse_value(v) for k, v in args.param}}
    out = Path(args.out) if args.out else notebooks.executed_path(f"notebooks/{src.stem}", args.profile)
    wall = notebooks.execute(src, out, params, log_output=args.verbose)
    print(f"{src.name} at profile={args.profile}: {wall:.1f} s wall time -> {out}")
    return 0


def _book(args: argparse.Namespace) -> int:
    from . import notebooks

    start = time.perf_counter()
    times = notebooks.execute_pages(args.profile, reuse=args.reuse)
    html = notebooks.build(args.profile, html_dir=Path(args.html) if args.html else None)
    for page, t in times.items():
        print(f"{page}: {t:.1f} s")
    print(f"book built at profile={args.profile} in {time.perf_counter() - start:.0f} s: {html}/index.html")
    return 0


def _verify(_: argparse.Namespace) -> int:
    from . import data, store

    data.verify_mnist()
    problems = store.verify_manifest()
    for p in problems:
        print(p)
    print("MNIST ok;", "MANIFEST ok" if not problems else f"{len(problems)} MANIFEST problem(s)")
    return 1 if problems else 0


def _manifest(_: argparse.Namespace) -> int:
    from . import store

    print(f"MANIFEST lists {store.rebuild_manifest()} artifacts")
    return 0


def _bench(args: argparse.Namespace) -> int:
    bench = paths.root() / "bench"
    scripts = sorted(bench.glob("bench_*.py"))
    if args.names:
        wanted = {f"bench_{n}.py" if not n.startswith("bench_") else f"{n}.py" for n in args.names}
        unknown = wanted - {s.name for s in scripts}
        if unknown:
            raise ValueError(f"unknown benchmark(s) {sorted(unknown)}; valid: {[s.stem[6:] for s in scripts]}")
        scripts = [s for s in scripts if s.name in wanted]
    for s in scripts:
        print(f"== {s.name} ==", flush=True)
        runpy.run_path(str(s), run_name="__main__")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robustlib", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="fetch MNIST and MathJax").set_defaults(func=_fetch)

    r = sub.add_parser("run", help="execute one notebook with papermill")
    r.add_argument("notebook", help="name (dam) or path (notebooks/dam.md)")
    r.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    r.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    r.add_argument("--out", help="executed .ipynb (default _build/executed/<profile>/<name>.ipynb)")
    r.add_argument("--verbose", action="store_true", help="stream the notebook's output")
    r.set_defaults(func=_run)

    b = sub.add_parser("book", help="execute every notebook and build the site")
    b.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    b.add_argument("--reuse", action="store_true", help="keep executed notebooks newer than their source")
    b.add_argument("--html", help="output folder (default _build/html)")
    b.set_defaults(func=_book)

    sub.add_parser("verify", help="check MNIST and the artifact MANIFEST").set_defaults(func=_verify)
    sub.add_parser("manifest", help="rebuild data/artifacts/MANIFEST").set_defaults(func=_manifest)
    be = sub.add_parser("bench", help="run benchmarks in bench/")
    be.add_argument("names", nargs="*")
    be.set_defaults(func=_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # bad input: a clear message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
