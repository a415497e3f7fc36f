"""The chapters a student reads: short code cells, lines that fit the page, modules under their own
names, and nothing that points outside the repository. Plus the project-wide lint (ruff)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from robustlib import paths

MAX_CELL_LINES = 30
MAX_LINE = 100
CHAPTERS = sorted((paths.root() / "notebooks").glob("*.md"))
PAGES = CHAPTERS + sorted((paths.root() / "book").glob("*.md"))
# Documents a reader of the book does not have: the team's specs, issues, shared notes.
OUTSIDE = re.compile(
    r"\bspecs?\b\s*(§|\(|[a-z]+\.md|column|ambiguit)|\bspec'?s\b|\bambiguity [A-Z]{1,3}\d|"
    r"\bissue \d+|\.\./shared|found-numbers|DESIGN\.md",
    re.IGNORECASE,
)


def code_cells(path: Path) -> list[tuple[int, str]]:
    nb = jupytext.read(path)
    return [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_code_cells_are_short(path):
    long = [(i, n) for i, src in code_cells(path) if (n := len(src.splitlines())) > MAX_CELL_LINES]
    assert not long, f"{path.name}: cells (index, lines) over {MAX_CELL_LINES} lines: {long}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_code_lines_fit_the_column(path):
    wide = [(i, line) for i, src in code_cells(path) for line in src.splitlines() if len(line) > MAX_LINE]
    assert not wide, f"{path.name}: {len(wide)} code lines over {MAX_LINE} characters, first: {wide[:3]}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_modules_are_imported_under_their_names(path):
    short = [
        line
        for _, src in code_cells(path)
        for line in src.splitlines()
        if re.match(r"\s*(import|from)\s.*\bas\s+[A-Za-z]{1,2}\b\s*$", line)
        and not re.search(r"\bas (np|plt|pd|nn|F)\b", line)
    ]  # the community's standard aliases
    assert not short, f"{path.name}: one-letter module aliases: {short}"


@pytest.mark.parametrize("path", PAGES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_no_reference_outside_the_repository(path):
    hits = [line.strip() for line in path.read_text().splitlines() if OUTSIDE.search(line)]
    assert not hits, f"{path.name} refers to documents the reader does not have: {hits[:3]}"


def test_the_outside_reference_pattern_catches_what_it_should():
    for text in [
        "see spec §7",
        "spec ambiguity A1",
        "ambiguity BA2",
        "issue 5 asks",
        "../shared/specs/abs.md",
        "the spec's column",
    ]:
        assert OUTSIDE.search(text), text
    for text in ["inspect the spectrum", "special cases", "the paper's own column", "a specific image"]:
        assert not OUTSIDE.search(text), text


def _ruff() -> list[str]:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed (make venv installs it)")
    return [exe]


def test_ruff_check_is_clean():
    out = subprocess.run([*_ruff(), "check", "."], cwd=paths.root(), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]


def test_ruff_format_is_clean():
    out = subprocess.run([*_ruff(), "format", "--check", "."], cwd=paths.root(), capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:]
