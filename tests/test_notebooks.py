"""Every notebook end to end at the smoke profile (papermill), as a reader would run it.

``retrain=True`` recomputes every cached result, so every code path runs; smoke artifacts go to the
git-ignored ``data/artifacts/smoke``. The executed notebooks land in ``_build/executed/smoke`` where
the book test reuses them.
"""

from __future__ import annotations

import json

import nbformat
import pytest

from robustlib import notebooks, store

PAGES = [p for p in notebooks.code_pages() if p.startswith("notebooks/")]


@pytest.mark.notebook
@pytest.mark.parametrize("page", PAGES, ids=[p.split("/")[-1] for p in PAGES])
def test_notebook_runs_at_smoke(page):
    from robustlib import paths

    src = paths.root() / f"{page}.md"
    assert notebooks.has_parameters_cell(src), f"{page} lacks a papermill parameters cell"
    out = notebooks.executed_path(page, "smoke")
    wall = notebooks.execute(src, out, {"profile": "smoke", "retrain": True})
    nb = nbformat.read(out, as_version=4)
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"
    ]
    assert not errors
    name = page.split("/")[-1]
    from robustlib import papers

    judged = bool(papers.get(name, "claims").RULES)  # the side-by-side chapter judges no claim
    card = json.loads(store.scorecard_path(name, "smoke").read_text()) if judged else None
    if judged:
        assert card["profile"] == "smoke" and card["targets"]
        assert all(t["verdict"] in store.VERDICTS for t in card["targets"])
    else:
        assert not store.scorecard_path(name, "smoke").exists()
    print(f"{page}: {wall:.1f} s")  # the budget (90 s on 2 cores) is reported, not asserted: see book/running
    # The headless command runs the same steps: it finds everything the chapter stored and agrees.
    import subprocess
    import sys

    stored = sorted(store.artifact_dir(name, "smoke").iterdir())
    done = subprocess.run(
        [sys.executable, "-m", "robustlib", "compute", name, "--profile", "smoke", "--sequential"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    if judged:
        again = json.loads(store.scorecard_path(name, "smoke").read_text())
        assert again["targets"] == card["targets"]
    assert sorted(store.artifact_dir(name, "smoke").iterdir()) == stored, "compute ran a step the chapter did not"


@pytest.mark.notebook
def test_bad_parameter_fails_in_the_first_cells(tmp_path):
    import papermill

    src = notebooks.notebook_path("baselines")
    with pytest.raises(papermill.PapermillExecutionError) as err:
        notebooks.execute(src, tmp_path / "bad.ipynb", {"profile": "fastest"})
    assert "valid: smoke, quick, paper" in str(err.value)
    nb = nbformat.read(tmp_path / "bad.ipynb", as_version=4)
    failed = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.get("outputs", []))
    ]
    first_code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    assert failed and failed[0] <= first_code[3]
