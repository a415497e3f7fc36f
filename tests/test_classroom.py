"""The classroom edition: exporter (student / instructor / grader bundle) and the grader.

Most tests grade a tiny synthetic MyST notebook that follows the exercise convention (each grading
run starts one kernel: a few seconds). Two tests (marked ``notebook``) grade the real baselines
editions at smoke: the only way to show that a real chapter's checks fail on the student stubs and
pass through the grader with the solutions. Every other chapter's checks run with their solutions in
tests/test_notebooks.py, and the export test below shows that its instructor edition holds exactly
the source's code cells.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from robustlib import classroom, paths

TINY = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

(tiny)=
# A tiny notebook

Text with a {cite}`madry2018pgd` citation.

```{code-cell} ipython3
:tags: [parameters]

profile = "quick"
seed = 0
device = "auto"
retrain = False
```

```{code-cell} ipython3
if profile not in ("smoke", "quick", "paper"):
    raise ValueError(f"unknown profile {profile!r}; valid: smoke, quick, paper")
data = list(range(5 if profile == "smoke" else 1000))
```

## Exercises

```{exercise} Sum of squares
:label: tiny-ex-squares

Write `squares(xs)` returning the sum of the squares of `xs`.
```

```{solution-start} tiny-ex-squares
:class: dropdown
```

```{code-cell} ipython3
:tags: [solution]

def squares(xs):
    ### BEGIN SOLUTION
    total = 0
    for value in xs:
        total += value * value
    return total
    ### END SOLUTION
```

```{solution-end}
```

```{code-cell} ipython3
:tags: [check, remove-cell]

# check tiny-ex-squares points=2
assert squares([1, 2]) == 5
assert profile == "smoke" and squares(data) == 30, "runs at smoke on 5 values"
```

```{exercise} Why squares?
:label: tiny-ex-why

Explain why squares are never negative.
```

```{solution-start} tiny-ex-why
:class: dropdown
```

A real number times itself keeps no sign.

```{solution-end}
```

```{exercise} Mean
:label: tiny-ex-mean

Write `mean(xs)`.
```

```{solution-start} tiny-ex-mean
:class: dropdown
```

```{code-cell} ipython3
:tags: [solution]

def mean(xs):
    ### BEGIN SOLUTION
    return sum(xs) / len(xs)
    ### END SOLUTION
```

```{solution-end}
```

```{code-cell} ipython3
:tags: [check, remove-cell]

# check tiny-ex-mean points=1
_small = mean([1, 2, 3])
assert _small == 2
```

```{code-cell} ipython3
:tags: [check, remove-cell]

# check tiny-ex-mean points=1
assert _small == 2 and mean(data) == 2, "checks of one exercise run in order"
```

```{code-cell} ipython3
print("done")
```
"""

CORRECT = {
    "tiny-ex-squares": "def squares(xs):\n    return sum(x * x for x in xs)",
    "tiny-ex-mean": "def mean(xs):\n    return sum(xs) / len(xs)",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    (d / "tiny.md").write_text(TINY)
    a = classroom.export(d / "tiny.md")
    return a, classroom.write_assignment(a, d / "out"), a.bundle(), d


def submission(tiny, edits: dict[str, str], name: str, *, add_after: dict[str, str] | None = None) -> Path:
    """The student edition with some answer cells replaced (and cells added after them)."""
    a, written, _, d = tiny
    nb = nbformat.read(written["student"], as_version=4)
    cells = []
    for c in nb.cells:
        label = c.metadata.get("robustlib", {}).get("exercise")
        if c.cell_type == "code" and label in edits:
            c.source = edits[label]
        cells.append(c)
        if c.cell_type == "code" and label in (add_after or {}):
            cells.append(nbformat.v4.new_code_cell(add_after[label]))  # a cell the student added
    nb.cells = cells
    path = d / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def by_label(report):
    return {e.label: e for e in report.exercises}


def source_notebooks():
    return sorted(p for p in paths.notebooks_dir().glob("*.md") if "{exercise}" in p.read_text())


# --- the exporter --------------------------------------------------------------------------------


def test_exercises_checks_and_points_are_read(tiny):
    a, _, bundle, _ = tiny
    assert [(e.label, e.kind, e.points) for e in a.exercises] == [
        ("tiny-ex-squares", "code", 2),
        ("tiny-ex-why", "text", 0),
        ("tiny-ex-mean", "code", 2),
    ]
    assert a.exercises[0].answer_names == ["squares"] and len(a.exercises[2].checks) == 2
    assert bundle["format"] == classroom.BUNDLE_FORMAT and bundle["profile"] == "smoke"
    assert bundle["exercises"][0]["checks"][0]["code"].startswith("assert squares([1, 2]) == 5")


def test_stub_keeps_the_signature_and_raises():
    src = (
        "import math\n\n\ndef f(x):\n    y = 1\n    ### BEGIN SOLUTION\n    return math.sqrt(x)\n    ### END SOLUTION\n"
    )
    stub = classroom._stub(src, "nb-ex-f")
    assert "math.sqrt" not in stub and "def f(x):" in stub and "    y = 1" in stub and "import math" in stub
    ns: dict = {}
    exec(stub, ns)
    with pytest.raises(NotImplementedError):
        ns["f"](4.0)


def _student_leaks(a: classroom.Assignment) -> list[str]:
    """Solution code or text, check code or markers that appear in the student edition."""
    text = "\n".join(c.source for c in a.student.cells)
    shared = "\n".join(
        c.source for c in a.instructor.cells if c.metadata.get("robustlib", {}).get("role") in ("source", "exercise")
    )
    leaks = [m for m in ("BEGIN SOLUTION", "END SOLUTION", "# check ") if m in text]
    for e in a.exercises:
        secret_lines = []
        for src in e.solution_code:
            body = re.findall(r"#+\s*BEGIN SOLUTION\n(.*?)\n\s*#+\s*END SOLUTION", src, re.S)
            secret_lines += [ln.strip() for b in body for ln in b.split("\n")]
        secret_lines += [ln.strip() for c in e.checks for ln in c.code.split("\n")]
        secret_lines += [ln.strip() for ln in e.solution_text.split("\n")]
        # a line counts when it is distinctive (not a bare `return x` that the notebook also uses)
        leaks += [ln for ln in secret_lines if len(ln) > 12 and ln not in shared and ln in text]
    for c in a.student.cells:
        tags = c.metadata.get("tags", [])
        if (
            "solution" in tags
            or "check" in tags
            or c.metadata.get("robustlib", {}).get("role") in ("check", "solution")
        ):
            leaks.append(f"cell tagged {tags}")
    return leaks


def test_student_edition_has_no_solution_code(tiny):
    a, written, _, _ = tiny
    assert _student_leaks(a) == []
    student = nbformat.read(written["student"], as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "value * value" not in text and "A real number times itself" not in text and "assert" not in text
    assert text.count("raise NotImplementedError()") == 2
    assert "**Your answer** (`tiny-ex-why`)" in text  # a place for the written answer
    assert "{exercise}" not in text and "{solution-start}" not in text and "[madry2018pgd]" in text


@pytest.mark.parametrize("src", source_notebooks(), ids=lambda p: p.stem)
def test_every_book_notebook_exports_without_leaking_solutions(src):
    """Every notebook with exercises follows the convention, and its student edition hides the
    solutions; its instructor edition keeps every code cell of the source in order."""
    import jupytext

    a = classroom.export(src)
    assert a.exercises and _student_leaks(a) == []
    source_code = [c.source for c in jupytext.read(src).cells if c.cell_type == "code"]
    assert [c.source for c in a.instructor.cells if c.cell_type == "code"] == source_code
    stubs = [
        c for c in a.student.cells if c.metadata.get("robustlib", {}).get("role") == "answer" and c.cell_type == "code"
    ]
    assert len(stubs) == sum(len(e.solution_code) for e in a.exercises)
    assert all("raise NotImplementedError()" in c.source for c in stubs)
    assert any("parameters" in c.metadata.get("tags", []) for c in a.student.cells)


def test_convention_errors_are_listed_and_nothing_is_written(tmp_path, monkeypatch):
    broken = (
        TINY.replace(":label: tiny-ex-why\n", "")  # no label
        .replace("# check tiny-ex-mean points=1\n_small", "# check tiny-ex-nosuch points=1\n_small")
        .replace("    ### BEGIN SOLUTION\n    return sum(xs)", "    return sum(xs)")
    )
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "tiny.md").write_text(broken)
    monkeypatch.setenv("ROBUSTLIB_HOME", str(tmp_path))
    with pytest.raises(classroom.ConventionError) as err:
        classroom.assignments(tmp_path / "out")
    msg = str(err.value)
    assert (
        "has no :label:" in msg and "unknown exercise 'tiny-ex-nosuch'" in msg and "END SOLUTION without BEGIN" in msg
    )
    assert not (tmp_path / "out").exists()


def test_a_check_that_cannot_fail_on_the_stub_is_rejected(tmp_path):
    (tmp_path / "tiny.md").write_text(TINY.replace("_small = mean([1, 2, 3])\nassert _small == 2", "assert data"))
    with pytest.raises(classroom.ConventionError, match="uses none of the answer's names"):
        classroom.export(tmp_path / "tiny.md")


def test_an_exercise_with_code_and_a_written_part(tmp_path):
    src = TINY.replace(
        "```{solution-start} tiny-ex-squares\n:class: dropdown\n```\n",
        "```{solution-start} tiny-ex-squares\n:class: dropdown\n```\n\nSquares add up.\n",
    )
    (tmp_path / "tiny.md").write_text(src)
    a = classroom.export(tmp_path / "tiny.md")
    assert a.exercises[0].kind == "code+text" and a.exercises[0].points == 2
    roles = [
        (c.cell_type, c.metadata["robustlib"]["role"])
        for c in a.student.cells
        if c.metadata["robustlib"].get("exercise") == "tiny-ex-squares"
    ]
    assert roles == [("markdown", "exercise"), ("markdown", "answer"), ("code", "answer")]
    assert (
        "plus a written answer"
        in a.student.cells[[c.metadata["robustlib"]["role"] for c in a.student.cells].index("exercise")].source
    )
    assert "Squares add up." not in "\n".join(c.source for c in a.student.cells)


def test_a_later_cell_that_needs_an_answer_is_a_warning(tmp_path):
    (tmp_path / "tiny.md").write_text(TINY.replace('print("done")', "print(squares(data))"))
    a = classroom.export(tmp_path / "tiny.md")
    assert any("uses the answer ['squares']" in w for w in a.warnings)


# --- the grader (one kernel per grading run) ------------------------------------------------------


def test_instructor_edition_passes_all_its_checks(tiny):
    _, written, bundle, _ = tiny
    r = classroom.grade(written["instructor"], bundle=bundle)
    assert (r.score, r.max_score) == (4, 4) and r.profile == "smoke"
    assert [e.status for e in r.exercises] == ["passed", "manual", "passed"] and not r.errors


def test_unmodified_student_edition_scores_zero(tiny):
    _, written, bundle, _ = tiny
    r = classroom.grade(written["student"], bundle=bundle)
    assert r.score == 0 and r.max_score == 4 and r.submission_sha256_matches is True
    s = by_label(r)
    assert s["tiny-ex-squares"].status == "failed" and "NotImplementedError" in s["tiny-ex-squares"].messages[0]
    assert s["tiny-ex-why"].status == "manual" and s["tiny-ex-why"].answer == ""


def test_pasted_correct_answers_score_full_marks(tiny):
    # the student also adds a cell of their own after an answer: checks run after it
    path = submission(
        tiny,
        {
            "tiny-ex-squares": "def squares(xs):\n    return helper(xs)",
            **{k: v for k, v in CORRECT.items() if k != "tiny-ex-squares"},
        },
        "pasted",
        add_after={"tiny-ex-squares": "def helper(xs):\n    return sum(x * x for x in xs)"},
    )
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        if (
            c.metadata.get("robustlib", {}).get("exercise") == "tiny-ex-why"
            and c.cell_type == "markdown"
            and c.metadata["robustlib"]["role"] == "answer"
        ):
            c.source = "**Your answer** (`tiny-ex-why`): a square is a product of two equal signs."
        if c.cell_type == "code" and c.source == CORRECT["tiny-ex-mean"]:
            c.metadata = {}  # a front end that dropped our metadata: the check finds `mean` by name
    nbformat.write(nb, path)
    r = classroom.grade(path, bundle=tiny[2])
    assert (r.score, r.max_score) == (4, 4), r.text()
    assert by_label(r)["tiny-ex-why"].answer == "a square is a product of two equal signs."


def test_a_raising_answer_scores_zero_and_the_rest_is_graded(tiny):
    path = submission(
        tiny,
        {"tiny-ex-squares": "raise RuntimeError('student bug')", "tiny-ex-mean": CORRECT["tiny-ex-mean"]},
        "raising",
    )
    r = classroom.grade(path, bundle=tiny[2])
    s = by_label(r)
    assert s["tiny-ex-squares"].score == 0 and "RuntimeError: student bug" in s["tiny-ex-squares"].messages[0]
    assert s["tiny-ex-mean"].score == 2 and r.score == 2
    assert "Traceback" not in r.text() and "Traceback" not in json.dumps(r.to_dict())


def test_partial_credit_dead_kernel_and_timeout_still_give_scores(tiny):
    # mean passes one of its two checks; then the notebook's last cell kills the kernel
    path = submission(
        tiny,
        {
            "tiny-ex-squares": CORRECT["tiny-ex-squares"],
            "tiny-ex-mean": "def mean(xs):\n    return 2 if len(xs) == 3 else -1",
        },
        "partial",
    )
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import os\nos._exit(3)"))
    nbformat.write(nb, path)
    r = classroom.grade(path, bundle=tiny[2])
    s = by_label(r)
    assert s["tiny-ex-squares"].score == 2 and s["tiny-ex-mean"].score == 1 and s["tiny-ex-mean"].status == "partial"
    assert any("stopped" in e and "DeadKernelError" in e and "in the cell `import os`" in e for e in r.errors), r.errors

    # a kernel killed before the checks: the scores say "not run", no exception escapes
    path = submission(tiny, {"tiny-ex-squares": "import os\nos._exit(3)"}, "dead")
    r = classroom.grade(path, bundle=tiny[2])
    assert r.score == 0 and all(e.status in ("not run", "manual") for e in r.exercises)

    # an answer cell that never ends is interrupted after the time limit; the rest is graded
    path = submission(
        tiny, {"tiny-ex-squares": "while True:\n    pass", "tiny-ex-mean": CORRECT["tiny-ex-mean"]}, "loop"
    )
    r = classroom.grade(path, bundle=tiny[2], timeout=3)
    s = by_label(r)
    assert s["tiny-ex-squares"].score == 0 and s["tiny-ex-mean"].score == 2


def test_unreadable_submission_gets_zero_and_a_message(tiny):
    path = tiny[3] / "garbage.ipynb"
    path.write_text("{not a notebook")
    r = classroom.grade(path, bundle=tiny[2])
    assert r.score == 0 and r.max_score == 4 and "could not read" in r.errors[0]


def test_cli_grade_prints_scores_writes_json_and_no_traceback(tiny):
    _, written, _, d = tiny
    path = submission(tiny, {"tiny-ex-squares": "raise RuntimeError('student bug')"}, "cli")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "robustlib",
            "grade",
            str(path),
            "--bundle",
            str(written["grader"]),
            "--json",
            str(d / "cli.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stdout + out.stderr
    assert re.search(r"tiny-ex-squares\s+code\s+0/2\s+your answer cell raised RuntimeError", out.stdout)
    assert re.search(r"total \(autograded\)\s+0/4", out.stdout)
    scores = json.loads((d / "cli.json").read_text())
    assert [e["score"] for e in scores["exercises"]] == [0, 0, 0] and scores["max_score"] == 4


def test_cli_errors_are_clear(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "robustlib", "grade", str(tmp_path / "nosuch.ipynb")], capture_output=True, text=True
    )
    assert out.returncode == 2 and "no such submission" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "robustlib", "assignments", "--out", str(tmp_path), "--notebook", "nosuch"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and "unknown notebook 'nosuch'" in out.stderr


def test_cli_assignments_writes_three_files_per_notebook(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "robustlib", "assignments", "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    for src in source_notebooks():
        for part in (f"student/{src.stem}.ipynb", f"instructor/{src.stem}.ipynb", f"grader/{src.stem}.json"):
            assert (tmp_path / part).exists(), part
        nbformat.validate(nbformat.read(tmp_path / "student" / f"{src.stem}.ipynb", as_version=4))


# --- the real baselines editions at smoke ---------------------------------------------------------


@pytest.fixture(scope="module")
def baselines(tmp_path_factory):
    """The baselines editions. Like the notebook tests, grading uses the real store's git-ignored
    smoke folder: the first run computes what is missing there (about a minute on 2 idle cores),
    the second only loads it."""
    [(a, written)] = classroom.assignments(tmp_path_factory.mktemp("baselines"), "baselines")
    return a, written


@pytest.mark.notebook
def test_baselines_student_edition_scores_zero_on_coding_exercises(baselines):
    a, written = baselines
    r = classroom.grade(written["student"], bundle=a.bundle())
    code = [e for e in r.exercises if e.kind != "text"]
    assert len(code) >= 2 and all(e.score == 0 and e.status == "failed" for e in code), r.text()
    assert all("NotImplementedError" in e.messages[0] for e in code)
    assert not r.errors, r.errors  # the rest of the notebook runs at smoke


@pytest.mark.notebook
def test_baselines_instructor_edition_scores_full_marks(baselines):
    a, written = baselines
    r = classroom.grade(written["instructor"], bundle=a.bundle())
    assert r.score == r.max_score > 0 and not r.errors, r.text()
