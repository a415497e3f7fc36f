"""``python -m robustlib <command>``: fetch, run, book, verify, manifest, pack, fetch-artifacts, prune, bench, assignments, grade.

fetch                      MNIST (sha256-checked) and the vendored MathJax
run NOTEBOOK --profile P   execute one notebook with papermill (-p key value for parameters)
compute [PAPER ...] --profile P
                           compute (or load) every stored result of the chapters (default: all six and compare)
                           as Ray tasks, write their scorecards (--address ADDR, --device D, --seed S;
                           --sequential: in this process, without Ray, with --retrain, --step NAME)
status [PAPER ...] --profile P
                           which steps of each chapter are complete in the store, the first result each
                           other one misses, and the compute time the stored results took, per device
book --profile P           execute every notebook at P and build the site into _build/html
verify                     check MNIST hashes and data/artifacts/MANIFEST
manifest                   rebuild data/artifacts/MANIFEST from the files
pack --profile P --out DIR bundle the profile's artifacts git does not track (--all: every one)
fetch-artifacts SOURCE     verify a bundle (folder or http(s) URL), then move it into the store
prune NOTEBOOK --profile P run a notebook, delete its stored results that the run did not use
bench [NAME ...]           run the benchmarks in bench/ (ratios measured in one run)
assignments --out DIR      student/instructor notebooks and grader bundles (--notebook NAME)
grade SUBMISSION.ipynb     run a submission at smoke, print per-exercise scores (--json OUT)
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
    if any(k == "profile" for k, _ in args.param):
        raise ValueError("give the profile with --profile, not -p profile")
    params = {"profile": args.profile, **{k: notebooks.parse_value(v) for k, v in args.param}}
    notebooks.check_parameters(src, params)  # before a kernel starts: one line naming valid values
    out = Path(args.out) if args.out else notebooks.executed_path(f"notebooks/{src.stem}", args.profile)
    wall = notebooks.execute(src, out, params, log_output=args.verbose)
    print(f"{src.name} at profile={args.profile}: {wall:.1f} s wall time -> {out}")
    return 0


def _compute(args: argparse.Namespace) -> int:
    from . import experiment, papers

    names = args.paper or list(papers.CHAPTERS)
    # the side-by-side chapter reads the papers' stored results: it runs after them
    names = sorted(names, key=lambda n: papers.CHAPTERS.index(n) if n in papers.CHAPTERS else -1)
    for name in names:  # a bad name or value fails before Ray starts or anything runs
        experiment.check_parameters(name, args.profile, args.seed, args.device, args.retrain)
    if not args.sequential:
        if args.retrain or args.step:
            raise ValueError("--retrain and --step run in this process: add --sequential")
        from . import runner

        report = runner.run(names, args.profile, address=args.address, seed=args.seed, device=args.device)
        print(report.summary())
        return 0 if report.ok else 1
    if args.step and len(names) != 1:
        raise ValueError(f"--step needs exactly one paper, got {len(names)}")
    for name in names:
        _compute_sequential(name, args)
    return 0


def _compute_sequential(name: str, args: argparse.Namespace) -> None:
    from . import experiment, papers

    start = time.perf_counter()
    exp = experiment.start(name, args.profile, args.seed, args.device, args.retrain, progress=True)
    results = papers.compute(exp, only=args.step or None)
    if args.step:
        print(f"{name} at profile={args.profile}: steps {', '.join(args.step)} stored")
    else:
        rows = papers.write_scorecard(exp, results)
        if not rows:
            print(f"{name} at profile={args.profile}: judges no claims of its own (no scorecard)")
            print(f"done in {time.perf_counter() - start:.0f} s")
            return
        counts = {v: sum(r["verdict"] == v for r in rows) for v in dict.fromkeys(r["verdict"] for r in rows)}
        print(f"{name} at profile={args.profile}: scorecard " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    print(f"done in {time.perf_counter() - start:.0f} s")


def _status(args: argparse.Namespace) -> int:
    from . import experiment, papers

    names = args.paper or list(papers.NAMES)
    for name in names:
        experiment.check_parameters(name, args.profile, 0, "cpu")
    for name in names:
        states = experiment.step_states(name, args.profile, papers.steps(name, papers.profile(name, args.profile)))
        done = sum(s.stored for s in states)
        spent = experiment.stored_compute(name, args.profile)
        where = ", ".join(f"{t / 60:.1f} min on {d}" for d, t in spent.items()) or "nothing stored"
        print(f"{name} at {args.profile}: {done}/{len(states)} steps complete; stored results took {where}")
        for s in states:
            mark = "done   " if s.stored else "missing"
            print(f"  {mark} {s.step}{' (GPU)' if s.gpu else ''}{'' if s.stored else ': ' + s.missing}")
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

    try:
        data.verify_mnist()
    except (data.DataIntegrityError, FileNotFoundError) as err:
        print(f"MNIST: {err}")
        return 1
    problems = store.verify_manifest()
    for p in problems:
        print(p)
    print("MNIST ok;", "MANIFEST ok" if not problems else f"{len(problems)} MANIFEST problem(s)")
    return 1 if problems else 0


def _manifest(_: argparse.Namespace) -> int:
    from . import store

    print(f"MANIFEST lists {store.rebuild_manifest()} artifacts")
    return 0


def _pack(args: argparse.Namespace) -> int:
    from . import bundle

    out = bundle.pack(args.profile, args.out, include="all" if args.all else "untracked")
    entries = bundle.parse_sums((out / bundle.SUMS).read_text())
    size = sum(e.size for e in entries.values())
    print(f"bundle of {len(entries)} files ({size / 2**20:.1f} MiB) at profile={args.profile}: {out}")
    return 0


def _fetch_artifacts(args: argparse.Namespace) -> int:
    from . import bundle

    got = bundle.fetch_artifacts(args.source, replace=args.replace)
    for rel in got.written:
        print(f"fetched {rel}")
    print(f"{len(got.written)} file(s) verified and written, {len(got.unchanged)} already in place")
    return 0


def _prune(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from . import notebooks, store

    src = notebooks.notebook_path(args.notebook)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "touched"
        log.touch()
        os.environ[store.TOUCH_LOG] = str(log)  # the kernel inherits it
        try:
            wall = notebooks.execute(
                src, notebooks.executed_path(f"notebooks/{src.stem}", args.profile), {"profile": args.profile}
            )
        finally:
            del os.environ[store.TOUCH_LOG]
        used = set(log.read_text().split())
    stale = store.prune(src.stem, args.profile, used, dry_run=args.dry_run)
    for p in stale:
        print(("would delete " if args.dry_run else "deleted ") + str(p.relative_to(paths.artifacts_dir())))
    print(
        f"{src.name} at profile={args.profile} ran in {wall:.0f} s and used {len(used)} artifacts; "
        f"{len(stale)} stale file(s) {'found' if args.dry_run else 'deleted'}"
    )
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
        argv = sys.argv
        sys.argv = [str(s), *args.args]  # each script parses its own options, not ours
        try:
            runpy.run_path(str(s), run_name="__main__")
        finally:
            sys.argv = argv
    return 0


def _assignments(args: argparse.Namespace) -> int:
    from . import classroom

    for a, written in classroom.assignments(args.out, args.notebook):
        auto = [e for e in a.exercises if e.checks]
        written_only = [e for e in a.exercises if e.kind != "code"]
        print(
            f"{a.name}: {len(a.exercises)} exercises ({len(auto)} autograded, {sum(e.points for e in auto)} points; "
            f"{len(written_only)} with a written answer)"
        )
        for kind, path in written.items():
            print(f"  {kind:<10} {path}")
        for w in a.warnings:
            print(f"  warning: {w}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    import json

    from . import classroom

    sub = Path(args.submission)
    bundle = classroom.load_bundle(args.bundle) if args.bundle else None
    out = Path(args.json) if args.json else sub.with_name(sub.name.removesuffix(".ipynb") + ".grade.json")
    executed = out.with_name(out.name.removesuffix(".json") + ".ipynb") if args.keep_executed else None
    report = classroom.grade(sub, bundle=bundle, timeout=args.timeout, executed=executed)
    print(report.text())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    print(f"scores written to {out}" + (f"; executed notebook: {executed}" if executed else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robustlib", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="fetch MNIST and MathJax").set_defaults(func=_fetch)

    r = sub.add_parser("run", help="execute one notebook with papermill")
    r.add_argument("notebook", help="name (dam) or path (notebooks/dam.md)")
    r.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    r.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"))
    r.add_argument("--out", help="executed .ipynb (default _build/executed/<profile>/<name>.ipynb)")
    r.add_argument("--verbose", action="store_true", help="stream the notebook's output")
    r.set_defaults(func=_run)

    c = sub.add_parser("compute", help="compute chapters' results headless (Ray) and write their scorecards")
    c.add_argument("paper", nargs="*", help="any of: baselines, rbfi, dam, abs, bang, mfbm, compare (default: all)")
    c.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    c.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--address", help="an existing Ray cluster (default: start a local Ray on this machine)")
    c.add_argument("--sequential", action="store_true", help="run the steps in order in this process, without Ray")
    c.add_argument("--retrain", action="store_true", help="with --sequential: recompute instead of loading")
    c.add_argument("--step", action="append", default=[], help="with --sequential: only this step (repeatable)")
    c.set_defaults(func=_compute)

    st = sub.add_parser("status", help="which steps of each chapter are stored (nothing is computed)")
    st.add_argument("paper", nargs="*", help="any of: baselines, rbfi, dam, abs, bang, mfbm (default: all)")
    st.add_argument("--profile", default="paper", choices=PROFILE_NAMES)
    st.set_defaults(func=_status)
    b = sub.add_parser("book", help="execute every notebook and build the site")
    b.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    b.add_argument("--reuse", action="store_true", help="keep executed notebooks newer than their source")
    b.add_argument("--html", help="output folder (default _build/html)")
    b.set_defaults(func=_book)

    sub.add_parser("verify", help="check MNIST and the artifact MANIFEST").set_defaults(func=_verify)
    sub.add_parser("manifest", help="rebuild data/artifacts/MANIFEST").set_defaults(func=_manifest)
    pk = sub.add_parser("pack", help="bundle the artifacts git does not track (SHA256SUMS + artifacts.tar)")
    pk.add_argument("--profile", required=True, choices=PROFILE_NAMES)
    pk.add_argument("--out", required=True, help="a new or empty folder for the bundle")
    pk.add_argument("--all", action="store_true", help="every file of the profile, tracked ones too")
    pk.set_defaults(func=_pack)
    fa = sub.add_parser("fetch-artifacts", help="verify a bundle, then move its files into the store")
    fa.add_argument("source", help="a bundle folder or its http(s) URL")
    fa.add_argument("--replace", action="store_true", help="overwrite store files that differ from the bundle's")
    fa.set_defaults(func=_fetch_artifacts)
    pr = sub.add_parser("prune", help="run a notebook and delete its artifacts that it did not use")
    pr.add_argument("notebook", help="name (dam) or path (notebooks/dam.md)")
    pr.add_argument("--profile", default="quick", choices=[n for n in PROFILE_NAMES if n != "smoke"])
    pr.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    pr.set_defaults(func=_prune)
    be = sub.add_parser("bench", help="run benchmarks in bench/")
    be.add_argument("names", nargs="*")
    be.add_argument(
        "--args",
        dest="args",
        nargs=argparse.REMAINDER,
        default=[],
        help="options passed to every benchmark script (e.g. --args --tiny)",
    )
    be.set_defaults(func=_bench)

    a = sub.add_parser("assignments", help="student and instructor notebooks and grader bundles")
    a.add_argument("--out", required=True, help="folder for student/, instructor/ and grader/")
    a.add_argument("--notebook", help="name (dam) or path; default: every notebook with exercises")
    a.set_defaults(func=_assignments)

    g = sub.add_parser("grade", help="grade a submission at the smoke profile")
    g.add_argument("submission", help="the student's .ipynb")
    g.add_argument("--json", help="scores as JSON (default SUBMISSION.grade.json)")
    g.add_argument("--bundle", help="grader bundle from `assignments` (default: built from notebooks/<name>.md)")
    g.add_argument("--timeout", type=int, default=600, help="seconds per cell before it is interrupted (600)")
    g.add_argument("--keep-executed", action="store_true", help="also keep the executed notebook beside the JSON")
    g.set_defaults(func=_grade)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:  # bad input: a clear message, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
