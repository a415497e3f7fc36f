"""The yardstick over every zoo model, from scratch: wall time in all, per model and per attack.

What the book's "protocol over all models" costs: every chapter's ``yardstick`` step (the protocol
of ``robustlib.protocol`` on each of its zoo models) recomputed into a scratch copy of the
artifact store from which the stored yardstick results were removed; the trained models and
everything else are reused from the copy, as they would be after the chapters' other steps.
The chapters run as ``python -m robustlib compute PAPER --sequential --step yardstick`` in
``--workers`` processes side by side (default 2, one torch thread each: on a 2-core machine two
single-threaded evaluations beat one evaluation split over both cores), the most expensive first.

Prints the wall time of the whole run and of each chapter, then for every model the seconds each
attack took (the protocol stores them with its result; a chapter's models run one after another
in its process), and writes them as JSON to ``--out`` (optional). ``--keep DIR`` keeps the
scratch store (its yardstick results can replace the committed ones: same keys, fresh times).

Run: ``.venv/bin/python bench/bench_yardstick.py [--profile quick] [--papers dam,rbfi]
[--workers 2] [--out FILE] [--keep DIR] [--tiny]``. ``--tiny`` (the DAM chapter at ``smoke``)
only checks that the benchmark runs. The times depend on the machine's load (printed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from robustlib import paths, zoo

# the most expensive first, so the two workers finish together (measured order at quick)
ORDER = ("mfbm", "abs", "baselines", "bang", "dam", "rbfi")


def scratch_store(profile: str, chapters: list[str], root: Path) -> Path:
    """A copy of the profile's artifact folders of ``chapters`` (and of the baselines', the
    transfer source) without their zoo models' stored yardstick results."""
    src, dst = paths.artifacts_dir(), root / "artifacts"
    for paper in sorted({*chapters, "baselines"}):
        folder = src / profile / paper
        if folder.is_dir():
            shutil.copytree(folder, dst / profile / paper)
    for name, paper in zoo.models().items():
        for f in (dst / profile / paper).glob(f"yardstick-{name}-{'[0-9a-f]' * 12}.*"):
            f.unlink()
    return dst


def run_chapter(paper: str, profile: str, artifacts: Path) -> tuple[str, float, int, str]:
    """One chapter's yardstick step in its own process with one torch thread: (paper, wall s, rc, log tail)."""
    env = {**os.environ, "ROBUSTLIB_ARTIFACTS": str(artifacts), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "robustlib", "compute", paper, "--profile", profile, "--sequential"]
    cmd += ["--device", "cpu", "--step", "yardstick"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=paths.root())
    return paper, time.perf_counter() - start, proc.returncode, (proc.stdout + proc.stderr)[-2000:]


def stored_seconds(profile: str, artifacts: Path, chapters: list[str]) -> dict[str, dict]:
    """``{model: {"images": n, "seconds": {norm: {attack: s}}, "total": s}}`` read from the JSON of
    each stored result in the scratch store (``ProtocolResult.to_dict``)."""
    out = {}
    for name, paper in zoo.models().items():
        if paper not in chapters:
            continue
        for f in sorted((artifacts / profile / paper).glob(f"yardstick-{name}-{'[0-9a-f]' * 12}.json")):
            result = json.loads(f.read_text())["result"]
            seconds = {norm: dict(n["seconds"]) for norm, n in result["norms"].items()}
            total = sum(sum(v.values()) for v in seconds.values())
            out[name] = {"paper": paper, "images": result["summary"]["n_images"], "seconds": seconds, "total": total}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick", choices=("smoke", "quick", "paper"))
    p.add_argument("--papers", default=",".join(ORDER), help=f"comma-separated, any of {', '.join(ORDER)}")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", help="write the times as JSON here")
    p.add_argument("--keep", help="keep the scratch artifact store in this (new) folder")
    p.add_argument("--tiny", action="store_true", help="the DAM chapter at smoke: a check that it runs")
    args = p.parse_args()
    profile, chapters = ("smoke", ["dam"]) if args.tiny else (args.profile, args.papers.split(","))
    bad = sorted(set(chapters) - set(ORDER))
    if bad or args.workers < 1:
        raise SystemExit(f"unknown chapter(s) {bad}; valid: {', '.join(ORDER)}" if bad else "--workers must be >= 1")
    chapters = [c for c in ORDER if c in chapters]
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-yardstick-"))
    root.mkdir(parents=True, exist_ok=True)
    artifacts = scratch_store(profile, chapters, root)
    print(f"profile {profile}: {', '.join(chapters)}; {args.workers} workers x 1 thread; load {os.getloadavg()[0]:.1f}")
    start = time.perf_counter()
    with ThreadPoolExecutor(args.workers) as pool:
        runs = list(pool.map(lambda c: run_chapter(c, profile, artifacts), chapters))
    wall = time.perf_counter() - start
    for paper, seconds, rc, tail in runs:
        print(f"  {paper:10s} {seconds:7.1f} s" + ("" if rc == 0 else f"  FAILED (exit {rc}):\n{tail}"))
    print(f"all chapters: {wall:.1f} s wall ({wall / 60:.1f} min); load after {os.getloadavg()[0]:.1f}")
    times = stored_seconds(profile, artifacts, chapters)
    for name, t in times.items():
        print(f"\n{name} ({t['paper']}, {t['images']} images): {t['total']:.1f} s")
        for norm, per in t["seconds"].items():
            print(f"  {norm}: " + ", ".join(f"{a} {s:.1f}" for a, s in per.items()))
    if args.out:
        report = {"profile": profile, "workers": args.workers, "wall_s": wall, "chapters": {r[0]: r[1] for r in runs}}
        Path(args.out).write_text(json.dumps({**report, "models": times}, indent=1))
    if not args.keep:
        shutil.rmtree(root)
    if any(rc for _, _, rc, _ in runs):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
