"""Classroom edition: student and instructor notebooks and an autograder, from the MyST sources.

The book's notebooks are the single source. Their exercises follow one convention (see
``book/teaching.md``)::

    ```{exercise} Short title           # the task; :label: <nb>-ex-<short>
    ```{solution-start} <label>         # everything up to {solution-end} is the solution:
      code cells tagged `solution`,     #   code between `### BEGIN SOLUTION` / `### END SOLUTION`
      and/or markdown                   #   is the answer; the rest of the cell (signature) is kept
    ```{solution-end}
    code cell tagged [check, remove-cell], first line `# check <label> points=<n>`

From that, :func:`export` makes

* a **student** notebook: solutions replaced by a stub (``raise NotImplementedError()``) under the
  task, a "your answer" cell for written answers, check cells removed;
* an **instructor** notebook: everything, with the exercises rendered for Jupyter;
* a **grader bundle** (JSON): the checks and their points, with the source's sha256.

:func:`grade` runs a submission with papermill at the ``smoke`` profile. Each check of the bundle is
inserted after the student's answer cell and wrapped so that whatever it raises becomes a score of
0 and a one-line message; the notebook runs on past errors (``allow_errors``), a cell that runs too
long is interrupted, and a kernel that dies still leaves the scores of the checks that ran. Student
code runs with the grader's permissions (as in nbgrader or otter's local mode): grade in an account
or container that holds nothing else.

Why not nbgrader or otter-grader: both install beside our pins, but neither injects papermill
parameters (the submission would run at ``quick``), both need the MyST sources converted to their
own notebook format anyway, and on a submission that kills its kernel both print a traceback and
give no per-exercise score (evaluated with nbgrader 0.9.6 and otter-grader 7.0.0; see the report
in ``book/teaching.md``).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import json
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat

BUNDLE_FORMAT = "robustlib-grader/1"
GRADE_PROFILE = "smoke"
META = "robustlib"  # key of our cell and notebook metadata

_DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}\s*(?P<arg>.*?)\s*$")
_PLAIN_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):\s*(?P<value>.*?)\s*$")
_CHECK = re.compile(r"^#\s*check\s+(?P<label>\S+)\s+points=(?P<points>\d+)\s*$")
_BEGIN = re.compile(r"^(?P<indent>\s*)#+\s*BEGIN SOLUTION\s*$")
_END = re.compile(r"^\s*#+\s*END SOLUTION\s*$")
_ROLE = re.compile(r"\{(?P<role>cite(?::\w+)?|doc|ref|numref|eq|term)\}`(?P<body>[^`]*)`")
_TARGET = re.compile(r"^\(\S+\)=\s*$", re.MULTILINE)
OURS = ("exercise", "solution-start", "solution-end")
_ANSWER_PLACEHOLDER = "*write it here.*"
_ANSWER_PROMPT = re.compile(r"^\*\*Your answer\*\* \(`[^`]*`\):")


class ConventionError(ValueError):
    """A notebook breaks the exercise convention; the message lists every problem found."""


# ---------------------------------------------------------------------------------------------
# Parsing the MyST source
# ---------------------------------------------------------------------------------------------


@dataclass
class Check:
    label: str
    points: int
    code: str  # the check's body, without its `# check` line


@dataclass
class Exercise:
    label: str
    title: str
    prompt: str  # markdown body of the {exercise} directive
    checks: list[Check] = field(default_factory=list)
    solution_code: list[str] = field(default_factory=list)  # full source of each `solution` cell
    solution_text: str = ""  # markdown inside the solution block
    answer_names: list[str] = field(default_factory=list)  # names the solution cells define

    @property
    def points(self) -> int:
        return sum(c.points for c in self.checks)

    @property
    def kind(self) -> str:
        """``code`` (autograded), ``text`` (graded by hand) or ``code+text`` (both parts)."""
        if self.checks:
            return "code+text" if self.solution_text.strip() else "code"
        return "text"


def _segments(text: str) -> list[tuple[str, Any]]:
    """Split markdown into ("text", str) and our directives ("exercise"|"solution-start"|
    "solution-end", {"arg", "options", "body"}); other fenced blocks stay text."""
    lines = text.split("\n")
    out: list[tuple[str, Any]] = []
    buf: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _DIRECTIVE.match(line.strip()) if line.strip() else None
        if m and m["name"] in OURS:
            fence = m["fence"]
            j, body = i + 1, []
            while j < len(lines) and not _closes(lines[j], fence):
                body.append(lines[j])
                j += 1
            options: dict[str, str] = {}
            while body and _OPTION.match(body[0].strip()):
                o = _OPTION.match(body[0].strip())
                options[o["key"]] = o["value"]
                body.pop(0)
            if buf:
                out.append(("text", "\n".join(buf)))
                buf = []
            out.append(
                (
                    m["name"],
                    {
                        "arg": m["arg"],
                        "options": options,
                        "body": "\n".join(body).strip("\n"),
                        "closed": j < len(lines),
                    },
                )
            )
            i = j + 1
            continue
        plain = _PLAIN_FENCE.match(line.strip()) or m
        if plain:  # any other fenced block (code, math, admonition): copy through untouched
            fence = plain["fence"]
            buf.append(line)
            j = i + 1
            while j < len(lines) and not _closes(lines[j], fence):
                buf.append(lines[j])
                j += 1
            if j < len(lines):
                buf.append(lines[j])
            i = j + 1
            continue
        buf.append(line)
        i += 1
    if buf:
        out.append(("text", "\n".join(buf)))
    return out


def _closes(line: str, fence: str) -> bool:
    s = line.strip()
    return len(s) >= len(fence) and set(s) == {fence[0]}


def _stub(source: str, label: str) -> str:
    """The solution cell with every BEGIN/END SOLUTION region replaced by a stub that raises."""
    out, inside = [], False
    for line in source.split("\n"):
        b = _BEGIN.match(line)
        if b:
            out += [
                f"{b['indent']}# YOUR CODE HERE (exercise {label}: see the task above)",
                f"{b['indent']}raise NotImplementedError()",
            ]
            inside = True
        elif _END.match(line):
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _marker_problems(source: str) -> list[str]:
    depth, begins = 0, 0
    for line in source.split("\n"):
        if _BEGIN.match(line):
            if depth:
                return ["nested BEGIN SOLUTION"]
            depth, begins = 1, begins + 1
        elif _END.match(line):
            if not depth:
                return ["END SOLUTION without BEGIN SOLUTION"]
            depth = 0
    if depth:
        return ["BEGIN SOLUTION without END SOLUTION"]
    if not begins:
        return ["no `### BEGIN SOLUTION` / `### END SOLUTION` markers (the student stub needs them)"]
    return []


def _defined_names(source: str) -> list[str]:
    """Top-level names a cell defines (functions, classes, assignments; not imports)."""
    try:
        tree = ast.parse(_strip_magics(source))
    except SyntaxError:
        return []
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names += [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]
    return list(dict.fromkeys(names))


def _used_names(source: str) -> set[str]:
    try:
        return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)}
    except SyntaxError:
        return set()


def _strip_magics(source: str) -> str:
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))


def _jupyter_markdown(text: str) -> str:
    """MyST roles and targets that plain Jupyter would show as noise, made readable."""

    def role(m: re.Match[str]) -> str:
        body = m["body"]
        if m["role"].startswith("cite"):
            return "[" + body + "]"
        t = re.match(r"^(.*?)\s*<[^>]*>$", body)  # `text <target>` -> text
        return t[1] if t else body

    return _TARGET.sub("", _ROLE.sub(role, text)).strip("\n")


# ---------------------------------------------------------------------------------------------
# Building the editions
# ---------------------------------------------------------------------------------------------


@dataclass
class Assignment:
    name: str
    source: Path
    sha256: str
    exercises: list[Exercise]
    student: nbformat.NotebookNode
    instructor: nbformat.NotebookNode
    warnings: list[str]

    def bundle(self) -> dict[str, Any]:
        """What the grader needs: every check with its points, keyed to the source version."""
        return {
            "format": BUNDLE_FORMAT,
            "notebook": self.name,
            "source": self.source.name,
            "source_sha256": self.sha256,
            "profile": GRADE_PROFILE,
            "exercises": [
                {
                    "label": e.label,
                    "title": e.title,
                    "kind": e.kind,
                    "points": e.points,
                    "answer_names": e.answer_names,
                    "checks": [{"points": c.points, "code": c.code} for c in e.checks],
                }
                for e in self.exercises
            ],
        }


class _Edition:
    """Accumulates output cells, merging consecutive markdown text into one cell."""

    def __init__(self) -> None:
        self.cells: list[nbformat.NotebookNode] = []
        self._md: list[str] = []

    def text(self, text: str) -> None:
        text = _jupyter_markdown(text)
        if text.strip():
            self._md.append(text.strip("\n"))

    def flush(self) -> None:
        if self._md:
            self.cells.append(nbformat.v4.new_markdown_cell("\n\n".join(self._md), metadata={META: {"role": "source"}}))
            self._md = []

    def add(self, cell: nbformat.NotebookNode) -> None:
        self.flush()
        self.cells.append(cell)

    def markdown(self, text: str, **meta: Any) -> None:
        """A markdown cell of its own (an exercise, a solution, an answer)."""
        self.add(nbformat.v4.new_markdown_cell(_jupyter_markdown(text), metadata={META: meta}))


def _exercise_markdown(number: int, ex: Exercise) -> str:
    if ex.kind == "code":
        how = f"{ex.points} point{'s' if ex.points != 1 else ''}, graded automatically"
    elif ex.kind == "code+text":
        how = f"{ex.points} point{'s' if ex.points != 1 else ''} graded automatically, plus a written answer"
    else:
        how = "written answer, graded by your instructor"
    return f"---\n**Exercise {number}: {ex.title}** (`{ex.label}`; {how})\n\n{ex.prompt}"


def export(source: str | Path, name: str | None = None) -> Assignment:
    """Parse one MyST notebook and build its student and instructor editions.

    Raises :class:`ConventionError` listing every problem (nothing is written by this function).
    """
    import jupytext

    source = Path(source)
    raw = source.read_bytes()
    name = name or source.stem
    nb = jupytext.reads(raw.decode("utf-8"), fmt="md:myst")
    problems: list[str] = []
    warnings: list[str] = []
    exercises: dict[str, Exercise] = {}
    order: dict[str, int] = {}
    student, instructor = _Edition(), _Edition()
    in_solution: str | None = None
    answer_text_given: set[str] = set()

    # first pass: exercises, their checks and written solutions (the rendered task says both)
    solution_of: str | None = None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for kind, seg in _segments(cell.source):
                if kind == "solution-start":
                    solution_of = seg["arg"]
                elif kind == "solution-end":
                    solution_of = None
                elif kind == "text" and solution_of in exercises and seg.strip():
                    exercises[solution_of].solution_text += seg + "\n"
                elif kind == "exercise":
                    label = seg["options"].get("label", "")
                    if not label:
                        problems.append(f"exercise {seg['arg']!r} has no :label:")
                        continue
                    if label in exercises:
                        problems.append(f"duplicate exercise label {label!r}")
                    if not label.startswith(f"{name}-ex-"):
                        problems.append(f"exercise label {label!r} does not start with '{name}-ex-'")
                    if not seg["closed"]:
                        problems.append(f"exercise {label!r}: its directive is never closed")
                    exercises[label] = Exercise(label, seg["arg"] or label, seg["body"])
                    order[label] = len(order) + 1
        elif "check" in cell.metadata.get("tags", []):
            first, _, body = cell.source.partition("\n")
            m = _CHECK.match(first.strip())
            if not m:
                problems.append(f"check cell does not start with '# check <label> points=<n>': {first!r}")
                continue
            if m["label"] not in exercises:
                problems.append(f"check for unknown exercise {m['label']!r} (the check must follow its exercise)")
                continue
            if int(m["points"]) <= 0:
                problems.append(f"check of {m['label']!r} has points={m['points']} (must be > 0)")
            try:
                compile(body, f"<check {m['label']}>", "exec")
            except SyntaxError as err:
                problems.append(f"check of {m['label']!r} is not plain Python: {err}")
            exercises[m["label"]].checks.append(Check(m["label"], int(m["points"]), body))

    # second pass: the two editions
    seen_solution: set[str] = set()
    for cell in nb.cells:
        tags = list(cell.metadata.get("tags", []))
        if cell.cell_type == "markdown":
            for kind, seg in _segments(cell.source):
                if kind == "text":
                    if in_solution:
                        if not seg.strip():
                            continue
                        instructor.markdown(seg, role="solution", exercise=in_solution)
                        if in_solution not in answer_text_given:
                            answer_text_given.add(in_solution)
                            student.markdown(
                                f"**Your answer** (`{in_solution}`): {_ANSWER_PLACEHOLDER}",
                                role="answer",
                                exercise=in_solution,
                            )
                    else:
                        student.text(seg)
                        instructor.text(seg)
                elif kind == "exercise":
                    label = seg["options"].get("label", "")
                    if label in exercises:
                        md = _exercise_markdown(order[label], exercises[label])
                        student.markdown(md, role="exercise", exercise=label)
                        instructor.markdown(md, role="exercise", exercise=label)
                elif kind == "solution-start":
                    label = seg["arg"]
                    if in_solution:
                        problems.append(f"solution-start {label!r} inside the solution of {in_solution!r}")
                    if label not in exercises:
                        problems.append(f"solution-start for unknown exercise {label!r} (it must follow its exercise)")
                        exercises[label] = Exercise(label, label, "")
                    if label in seen_solution:
                        problems.append(f"exercise {label!r} has two solution blocks")
                    seen_solution.add(label)
                    in_solution = label
                    instructor.markdown(f"**Solution** (`{label}`)", role="solution", exercise=label)
                elif kind == "solution-end":
                    if not in_solution:
                        problems.append("solution-end without solution-start")
                    in_solution = None
            continue
        # code cells
        if "check" in tags:
            if in_solution:
                problems.append(f"a check cell sits inside the solution of {in_solution!r}")
            m = _CHECK.match(cell.source.partition("\n")[0].strip())
            instructor.add(
                nbformat.v4.new_code_cell(
                    cell.source, metadata={"tags": tags, META: {"role": "check", "exercise": m["label"] if m else None}}
                )
            )
            continue
        if "solution" in tags:
            if not in_solution:
                problems.append(f"a cell tagged solution is outside any solution block: {cell.source[:60]!r}")
                continue
            ex = exercises[in_solution]
            for p in _marker_problems(cell.source):
                problems.append(f"solution of {in_solution!r}: {p}")
            ex.solution_code.append(cell.source)
            ex.answer_names += [n for n in _defined_names(cell.source) if n not in ex.answer_names]
            meta = {META: {"role": "answer", "exercise": in_solution}}
            student.add(nbformat.v4.new_code_cell(_stub(cell.source, in_solution), metadata=copy.deepcopy(meta)))
            instructor.add(nbformat.v4.new_code_cell(cell.source, metadata={"tags": tags, **meta}))
            continue
        if in_solution:
            problems.append(f"a code cell in the solution of {in_solution!r} is not tagged solution")
            continue
        meta = {"tags": tags} if tags else {}
        uses = _used_names(cell.source)
        for ex in exercises.values():
            clash = [n for n in ex.answer_names if n in uses and n not in _defined_names(cell.source)]
            if clash:
                warnings.append(
                    f"a cell after {ex.label} uses the answer {clash}: in the student edition it "
                    "fails until the exercise is solved"
                )
        student.add(nbformat.v4.new_code_cell(cell.source, metadata={**meta, META: {"role": "source"}}))
        instructor.add(nbformat.v4.new_code_cell(cell.source, metadata={**meta, META: {"role": "source"}}))
    if in_solution:
        problems.append(f"the solution of {in_solution!r} is never closed with solution-end")

    for ex in exercises.values():
        if ex.label not in seen_solution:
            problems.append(f"exercise {ex.label!r} has no solution block")
        if ex.solution_code and not ex.checks:
            warnings.append(f"{ex.label}: a code solution without a check is graded by hand")
        if ex.checks and not ex.solution_code:
            problems.append(f"{ex.label}: checks but no solution cell tagged solution")
        for c in ex.checks:
            if ex.answer_names and not (_used_names(c.code) & set(ex.answer_names)):
                problems.append(
                    f"a check of {ex.label!r} uses none of the answer's names {ex.answer_names}: "
                    "it cannot fail on the student stub"
                )
    if problems:
        raise ConventionError(f"{source.name} breaks the exercise convention:\n  - " + "\n  - ".join(problems))

    student.flush()
    instructor.flush()
    sha = hashlib.sha256(raw).hexdigest()
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    editions = {}
    for edition, built in (("student", student), ("instructor", instructor)):
        book = nbformat.v4.new_notebook(
            cells=built.cells,
            metadata={
                "kernelspec": kernelspec,
                "language_info": {"name": "python"},
                META: {"assignment": name, "edition": edition, "source": source.name, "source_sha256": sha},
            },
        )
        nbformat.validate(book)
        editions[edition] = book
    return Assignment(
        name, source, sha, list(exercises.values()), editions["student"], editions["instructor"], warnings
    )


def write_assignment(a: Assignment, out: str | Path) -> dict[str, Path]:
    """``out/student/<nb>.ipynb``, ``out/instructor/<nb>.ipynb``, ``out/grader/<nb>.json``
    (each written to a temporary file, then renamed)."""
    out = Path(out)
    paths = {
        "student": out / "student" / f"{a.name}.ipynb",
        "instructor": out / "instructor" / f"{a.name}.ipynb",
        "grader": out / "grader" / f"{a.name}.json",
    }
    texts = {
        "student": nbformat.writes(a.student),
        "instructor": nbformat.writes(a.instructor),
        "grader": json.dumps(a.bundle(), indent=1) + "\n",
    }
    for key, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(texts[key])
        tmp.replace(path)
    return paths


def assignments(out: str | Path, notebook: str | None = None) -> list[tuple[Assignment, dict[str, Path]]]:
    """Export one notebook (name or path) or every ``notebooks/*.md`` that has exercises.

    Every selected notebook is parsed before anything is written, so a convention error in one
    leaves ``out`` untouched.
    """
    from . import notebooks, paths

    sources = [notebooks.notebook_path(notebook)] if notebook else sorted(paths.notebooks_dir().glob("*.md"))
    built = [export(s) for s in sources]
    if notebook is None:
        built = [a for a in built if a.exercises]
    elif not built[0].exercises:
        raise ValueError(f"{sources[0].name} has no exercises")
    return [(a, write_assignment(a, out)) for a in built]


# ---------------------------------------------------------------------------------------------
# Grading
# ---------------------------------------------------------------------------------------------


@dataclass
class ExerciseScore:
    label: str
    title: str
    kind: str
    score: float
    max_score: float
    status: str  # passed | partial | failed | manual | not run
    messages: list[str] = field(default_factory=list)
    answer: str | None = None  # the student's written answer (text exercises)


@dataclass
class GradeReport:
    submission: str
    notebook: str
    profile: str
    score: float
    max_score: float
    exercises: list[ExerciseScore]
    errors: list[str]  # notebook-level problems: cells outside the answers that raised, a dead kernel
    wall_s: float
    source_sha256: str
    submission_sha256_matches: bool | None  # None: the submission does not say which version it is

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        w = max([len(e.label) for e in self.exercises] + [len("total (autograded)")])
        lines = [
            f"{Path(self.submission).name}: assignment {self.notebook}, graded at profile {self.profile} "
            f"in {self.wall_s:.1f} s",
            "",
        ]
        lines.append(f"{'exercise':<{w}}  {'kind':<9}  {'score':>7}  result")
        for e in self.exercises:
            score = "-" if e.kind == "text" else f"{_num(e.score)}/{_num(e.max_score)}"
            msg = "; ".join(e.messages) if e.messages else e.status
            lines.append(f"{e.label:<{w}}  {e.kind:<9}  {score:>7}  {msg}")
        lines.append(f"{'total (autograded)':<{w}}  {'':<9}  {_num(self.score) + '/' + _num(self.max_score):>7}")
        manual = [e.label for e in self.exercises if e.kind != "code"]
        if manual:
            lines.append(f"written answers to grade by hand: {', '.join(manual)}")
        for err in self.errors:
            lines.append(f"note: {err}")
        if self.submission_sha256_matches is False:
            lines.append("note: the submission was made from another version of the notebook than these checks")
        return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:g}"


def load_bundle(path: str | Path) -> dict[str, Any]:
    bundle = json.loads(Path(path).read_text())
    if bundle.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{path} is not a grader bundle (format {bundle.get('format')!r}, expected {BUNDLE_FORMAT!r})")
    return bundle


def _role(cell: nbformat.NotebookNode) -> dict[str, Any]:
    meta = cell.get("metadata", {}).get(META)
    return meta if isinstance(meta, dict) else {}


def _is_check(cell: nbformat.NotebookNode) -> bool:
    return _role(cell).get("role") == "check" or (
        cell.cell_type == "code" and "check" in cell.get("metadata", {}).get("tags", [])
    )


_WRAPPER = """\
# robustlib grader: check {label} ({points} points); a failure is recorded, never raised
def __robustlib_check(__source={source!r}, __record={record!r}, __key={key!r}):
    import json as __json
    try:
        exec(compile(__source, "<check {label}>", "exec"), globals())
        __result = {{"key": __key, "passed": True}}
    except BaseException as __err:  # noqa: BLE001 - whatever the answer does, it is a score
        __result = {{"key": __key, "passed": False, "error": type(__err).__name__, "message": str(__err)[:300]}}
    with open(__record, "a") as __f:
        __f.write(__json.dumps(__result) + "\\n")
__robustlib_check()
del __robustlib_check
"""


def _insert_position(cells: list[nbformat.NotebookNode], ex: dict[str, Any]) -> int:
    """After the student's answer cell for ``ex`` and any cells the student added right after it;
    by the names the answer defines where the metadata was lost; else at the end."""
    idx = [
        i for i, c in enumerate(cells) if _role(c).get("exercise") == ex["label"] and _role(c).get("role") == "answer"
    ]
    if not idx:
        names = set(ex["answer_names"])
        idx = [i for i, c in enumerate(cells) if c.cell_type == "code" and names & set(_defined_names(c.source))]
    if not idx:
        return len(cells)
    i = idx[-1] + 1
    while i < len(cells) and not _role(cells[i]):  # cells the student added after the answer
        i += 1
    return i


def _message(rec: dict[str, Any], answer_errors: list[str]) -> str:
    err, text = rec.get("error", ""), rec.get("message", "")
    if err == "NotImplementedError":
        msg = "not answered (the stub raises NotImplementedError)"
    elif err == "AssertionError":
        msg = f"a check failed: {text}" if text else "a check failed"
    elif err == "KeyboardInterrupt":
        msg = "interrupted: the check ran longer than the time limit"
    elif err == "NameError":
        msg = f"NameError: {text} (did the answer cell run?)"
    else:
        msg = f"{err}: {text}" if text else err
    if answer_errors:
        msg = f"your answer cell raised {answer_errors[0]}; " + msg
    return msg


def _where(cell: nbformat.NotebookNode) -> str:
    """A cell named by its first line (indices shift with the grader's own cells)."""
    first = next((ln.strip() for ln in cell.source.split("\n") if ln.strip()), "")
    return f"`{first[:60]}{'...' if len(first) > 60 else ''}`"


def _error_line(cell: nbformat.NotebookNode) -> str | None:
    for o in cell.get("outputs", []):
        if o.get("output_type") == "error":
            return f"{o.get('ename', 'Error')}: {str(o.get('evalue', ''))[:200]}".rstrip(": ")
    return None


def grade(
    submission: str | Path,
    *,
    bundle: dict[str, Any] | None = None,
    timeout: int = 600,
    executed: str | Path | None = None,
    parameters: dict[str, Any] | None = None,
) -> GradeReport:
    """Run ``submission`` at the smoke profile with the bundle's checks; never raises for what the
    submission does (unreadable file, raising cells, a dead kernel, a cell over ``timeout`` s)."""
    import papermill

    submission = Path(submission)
    if not submission.exists():
        raise ValueError(f"no such submission: {submission}")
    start = time.perf_counter()
    errors: list[str] = []
    try:
        nb = nbformat.read(submission, as_version=4)
    except Exception as err:  # noqa: BLE001 - not a notebook: zero with the reason
        nb, read_error = None, f"could not read the submission as a notebook: {type(err).__name__}: {str(err)[:200]}"
    else:
        read_error = None
    meta = (nb.metadata.get(META) if nb is not None else None) or {}
    if bundle is None:
        bundle = _bundle_for(meta.get("assignment") or submission.stem.split(".")[0])
    claimed = meta.get("source_sha256")
    matches = None if not claimed else claimed == bundle["source_sha256"]

    records: dict[str, dict[str, Any]] = {}
    answer_errors: dict[str, list[str]] = {}
    answers: dict[str, str] = {}
    if read_error:
        errors.append(read_error)
    else:
        cells = [c for c in nb.cells if not _is_check(c)]
        for c in cells:
            if c.cell_type == "code":
                c.outputs, c.execution_count = [], None
        with tempfile.TemporaryDirectory(prefix="robustlib-grade-") as tmp:
            record = Path(tmp) / "checks.jsonl"
            record.touch()
            # insert from the end backwards so earlier positions stay valid; checks that share a
            # position keep the order of the bundle
            plan = [
                (_insert_position(cells, ex), n, ex, k, check)
                for n, (ex, k, check) in enumerate(
                    (ex, k, check) for ex in bundle["exercises"] for k, check in enumerate(ex["checks"])
                )
            ]
            for pos, _, ex, k, check in sorted(plan, key=lambda p: (p[0], p[1]), reverse=True):
                src = _WRAPPER.format(
                    label=ex["label"],
                    points=check["points"],
                    source=check["code"],
                    record=str(record),
                    key=f"{ex['label']}#{k}",
                )
                cells.insert(pos, nbformat.v4.new_code_cell(src, metadata={META: {"role": "grader-check"}}))
            nb.cells = cells
            nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
            out = Path(executed) if executed else Path(tmp) / "executed.ipynb"
            out.parent.mkdir(parents=True, exist_ok=True)
            try:
                papermill.execute_notebook(
                    nb,
                    str(out),
                    parameters={"profile": GRADE_PROFILE, "retrain": False, **(parameters or {})},
                    kernel_name="python3",
                    cwd=str(submission.resolve().parent),
                    progress_bar=False,
                    log_output=False,
                    execution_timeout=timeout,
                    allow_errors=True,
                    interrupt_on_timeout=True,
                )
            except papermill.PapermillExecutionError:
                pass  # some cell raised: expected; the scores say which
            except Exception as err:  # noqa: BLE001 - dead kernel, timeout at start-up, ...
                stopped = f"the notebook stopped: {type(err).__name__}: {str(err)[:200]}"
                if out.exists():  # papermill saved the notebook as it went: the last cell started
                    started = [
                        c
                        for c in nbformat.read(out, as_version=4).cells
                        if c.get("metadata", {}).get("papermill", {}).get("start_time")
                    ]
                    if started:
                        stopped += f" in the cell {_where(started[-1])}"
                errors.append(stopped)
            for line in record.read_text().splitlines():
                try:
                    rec = json.loads(line)
                    records[rec["key"]] = rec
                except (ValueError, KeyError, TypeError):  # written by something else than a check
                    continue
            done = nbformat.read(out, as_version=4) if out.exists() else nb
        for c in done.cells:
            role = _role(c)
            err = _error_line(c) if c.cell_type == "code" else None
            if role.get("role") == "answer":
                label = role.get("exercise")
                if c.cell_type == "markdown":
                    text = _ANSWER_PROMPT.sub("", c.source.strip(), count=1).strip()
                    text = "" if text == _ANSWER_PLACEHOLDER else text
                    answers[label] = (answers.get(label, "") + "\n\n" + text).strip()
                elif err:
                    answer_errors.setdefault(label, []).append(err)
            elif err and role.get("role") != "grader-check" and len(errors) < 3:
                errors.append(f"the cell {_where(c)} raised {err}")

    scores = []
    for ex in bundle["exercises"]:
        if not ex["checks"]:
            scores.append(
                ExerciseScore(
                    ex["label"],
                    ex["title"],
                    ex["kind"],
                    0,
                    0,
                    "manual",
                    ["written answer: graded by the instructor"],
                    answers.get(ex["label"]),
                )
            )
            continue
        got, msgs, missing = 0.0, [], 0
        for k, check in enumerate(ex["checks"]):
            rec = records.get(f"{ex['label']}#{k}")
            if rec is None:
                missing += 1
                msgs.append("not run: " + (read_error or "the notebook stopped before this check"))
            elif rec["passed"]:
                got += check["points"]
            else:
                msgs.append(_message(rec, answer_errors.get(ex["label"], [])))
        total = float(ex["points"])
        status = (
            "passed"
            if got == total
            else "not run"
            if missing == len(ex["checks"])
            else "partial"
            if got > 0
            else "failed"
        )
        if ex["kind"] == "code+text":
            msgs.append("plus a written answer to grade by hand")
        scores.append(
            ExerciseScore(
                ex["label"],
                ex["title"],
                ex["kind"],
                got,
                total,
                status,
                list(dict.fromkeys(msgs)),
                answers.get(ex["label"]),
            )
        )
    return GradeReport(
        submission=str(submission),
        notebook=bundle["notebook"],
        profile=GRADE_PROFILE,
        score=sum(s.score for s in scores),
        max_score=sum(s.max_score for s in scores),
        exercises=scores,
        errors=errors,
        wall_s=time.perf_counter() - start,
        source_sha256=bundle["source_sha256"],
        submission_sha256_matches=matches,
    )


def _bundle_for(name: str) -> dict[str, Any]:
    """The bundle of the book's current notebook ``name`` (ValueError naming the valid ones)."""
    from . import notebooks

    try:
        source = notebooks.notebook_path(name)
    except ValueError as err:
        raise ValueError(f"{err} (the submission does not say which notebook it is from: pass --bundle)") from None
    return export(source).bundle()


__all__ = [
    "Assignment",
    "Check",
    "ConventionError",
    "Exercise",
    "ExerciseScore",
    "GradeReport",
    "assignments",
    "export",
    "grade",
    "load_bundle",
    "write_assignment",
]
