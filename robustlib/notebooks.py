"""Executing the MyST notebooks (papermill via jupytext) and building the book from the results.

The book is built from *executed* notebooks: each page listed in ``_toc.yml`` that holds code
(``notebooks/*.md`` and ``book/scorecard.md``) is executed with papermill at one profile into
``_build/executed/<profile>/``; a staging copy of the book then replaces those pages by their
executed ``.ipynb`` and Jupyter Book renders it with execution off (``-W -n --keep-going``). The
same executed notebooks serve the tests (smoke) and ``make book`` (quick), so nothing runs twice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import paths

CODE_PAGES_OUTSIDE_NOTEBOOKS = ("book/intro", "book/scorecard", "book/execution")  # book pages that execute code


def notebook_path(name_or_path: str) -> Path:
    """``dam`` or ``notebooks/dam.md`` -> the MyST source; ``ValueError`` lists the valid names."""
    p = Path(name_or_path)
    folder = paths.notebooks_dir().resolve()
    valid = sorted(q.stem for q in folder.glob("*.md"))
    if p.suffix == ".md" and p.exists():
        if p.resolve().parent != folder:  # e.g. README.md: not a notebook of the book
            raise ValueError(f"{name_or_path!r} is not a notebook of {folder}; valid: {', '.join(valid)}")
        return p.resolve()
    candidate = folder / f"{p.stem}.md"
    if candidate.exists() and p.suffix in ("", ".md", ".ipynb"):
        return candidate
    raise ValueError(f"unknown notebook {name_or_path!r}; valid: {', '.join(valid)}")


def toc_pages() -> list[str]:
    """Every page of ``_toc.yml`` in order, as paths relative to the root without suffix."""
    import yaml

    toc = yaml.safe_load((paths.root() / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                pages.append(e["file"])
            walk(e.get("sections"))
            walk(e.get("chapters"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return pages


def code_pages() -> list[str]:
    return [p for p in toc_pages() if p.startswith("notebooks/") or p in CODE_PAGES_OUTSIDE_NOTEBOOKS]


def executed_path(page: str, profile: str) -> Path:
    return paths.build_dir() / "executed" / profile / f"{Path(page).name}.ipynb"


def parse_value(text: str) -> Any:
    """Command-line parameter value: int, float, bool or string."""
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


PARAMETERS = ("profile", "seed", "device", "retrain")  # every chapter's papermill parameters


def check_parameters(source: Path, parameters: dict[str, Any]) -> None:
    """Validate a chapter's parameters before its kernel starts (``ValueError`` names valid values)."""
    from . import experiment, papers

    unknown = sorted(set(parameters) - set(PARAMETERS))
    if unknown and source.stem in papers.CHAPTERS:
        raise ValueError(f"unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(PARAMETERS)}")
    if source.stem in papers.CHAPTERS:
        experiment.check_parameters(source.stem, **parameters)


def execute(
    source: Path,
    out: Path,
    parameters: dict[str, Any] | None = None,
    *,
    timeout: int | None = None,
    log_output: bool = False,
) -> float:
    """Execute a MyST notebook with papermill; write the executed ``.ipynb``; return wall seconds."""
    import jupytext
    import papermill

    out.parent.mkdir(parents=True, exist_ok=True)
    nb = jupytext.read(source)
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    start = time.perf_counter()
    # figures must reach the page: a kernel inheriting MPLBACKEND=Agg (tests, headless shells)
    # would draw them nowhere
    backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # the kernel inherits it
    try:
        papermill.execute_notebook(
            nb,
            str(out),
            parameters=parameters or {},
            kernel_name="python3",
            cwd=str(source.parent),
            progress_bar=False,
            log_output=log_output,
            execution_timeout=timeout,
        )
    finally:
        if backend is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = backend
    return time.perf_counter() - start


def execution_statistics() -> list[dict[str, str]]:
    """One row per executed chapter notebook (every profile built here): its profile, the wall time
    papermill recorded, when it ran, and whether it finished without an error."""
    import nbformat

    rows = []
    for path in sorted((paths.build_dir() / "executed").glob("*/*.ipynb")):
        if path.stem not in {Path(p).name for p in code_pages() if p.startswith("notebooks/")}:
            continue
        meta = nbformat.read(path, as_version=4).metadata.get("papermill", {})
        rows.append(
            {
                "page": path.stem,
                "profile": path.parent.name,
                "wall time": f"{meta.get('duration') or 0:.1f} s",
                "finished": (meta.get("end_time") or "?")[:19],
                "status": "ok" if not meta.get("exception") else "error",
            }
        )
    return rows


def has_parameters_cell(source: Path) -> bool:
    import jupytext

    nb = jupytext.read(source)
    return any("parameters" in c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code")


def execute_pages(
    profile: str, *, reuse: bool = False, extra: dict[str, Any] | None = None, only: list[str] | None = None
) -> dict[str, float]:
    """Execute every code page at ``profile`` (the scorecard page last); return wall times.

    ``reuse``: keep an executed notebook that is newer than its source. Pages without a
    parameters cell (the scorecard) gather the others' results and always run again.
    """
    times = {}
    # chapters first: the overview pages (no parameters cell) gather what the chapters stored
    pages = sorted(code_pages(), key=lambda p: not has_parameters_cell(paths.root() / f"{p}.md"))
    for page in pages:
        name = Path(page).name
        if only is not None and name not in only:
            continue
        src = paths.root() / f"{page}.md"
        out = executed_path(page, profile)
        parametrised = has_parameters_cell(src)
        if reuse and parametrised and out.exists() and out.stat().st_mtime >= src.stat().st_mtime:
            continue
        params = {"profile": profile, **(extra or {})} if parametrised else {}
        print(f"executing {page}.md at profile={profile} ...", flush=True)
        times[page] = execute(src, out, params)
        print(f"  {times[page]:.1f} s -> {out.relative_to(paths.root())}", flush=True)
    return times


def stage(profile: str) -> Path:
    """A copy of the book whose code pages are the executed notebooks of ``profile``."""
    import yaml

    root = paths.root()
    st = paths.build_dir() / "stage" / profile
    if st.exists():
        shutil.rmtree(st)
    st.mkdir(parents=True)
    shutil.copytree(root / "book", st / "book", ignore=shutil.ignore_patterns("_static"))
    (st / "book" / "_static").symlink_to(root / "book" / "_static", target_is_directory=True)
    shutil.copy(root / "_toc.yml", st / "_toc.yml")
    config = yaml.safe_load((root / "_config.yml").read_text())
    config.setdefault("execute", {})["execute_notebooks"] = "off"
    config["exclude_patterns"] = [p for p in config.get("exclude_patterns", []) if "ipynb" not in p]
    (st / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (st / "notebooks").mkdir()
    for page in code_pages():
        executed = executed_path(page, profile)
        if not executed.exists():
            raise FileNotFoundError(f"{page} has not been executed at profile {profile}: {executed} is missing")
        target = st / f"{page}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        (st / f"{page}.md").unlink(missing_ok=True)
        _without_checks(executed, target)
    return st


def _without_checks(executed: Path, target: Path) -> None:
    """Copy an executed notebook without the grader's hidden checks (cells tagged ``check``): the
    book's ``.ipynb`` download must not hand them to students (the gated solutions stay: the book
    shows them on purpose; the student edition comes from ``robustlib assignments``)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    nb.cells = [c for c in nb.cells if "check" not in c.metadata.get("tags", [])]
    # papermill keeps the whole input notebook (checks included) as its "input_path": name it instead
    if "papermill" in nb.metadata:
        nb.metadata.papermill["input_path"] = f"notebooks/{executed.stem}.md"
    nbformat.write(nb, target)


def build(profile: str, *, html_dir: Path | None = None, strict: bool = True) -> Path:
    """Render the staged book with Jupyter Book into ``html_dir`` (default ``_build/html``)."""
    st = stage(profile)
    out = paths.build_dir() / "jb" / profile
    jb = Path(sys.executable).with_name("jupyter-book")  # the venv's console script
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(st), "--path-output", str(out)]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    html_dir = html_dir or paths.build_dir() / "html"
    if html_dir.exists():
        shutil.rmtree(html_dir)
    shutil.copytree(out / "_build" / "html", html_dir)
    return html_dir
