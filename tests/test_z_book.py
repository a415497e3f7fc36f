"""The strict book build (-W -n --keep-going) from the smoke-executed notebooks (runs last)."""

from __future__ import annotations

import pytest

from robustlib import notebooks, paths


@pytest.mark.book
def test_book_builds_strictly_at_smoke():
    notebooks.execute_pages("smoke", reuse=True, extra={"retrain": True})
    html = notebooks.build("smoke", html_dir=paths.build_dir() / "html-smoke")
    # the root index.html is jupyter-book's redirect to the first page of the toc
    assert "url=book/intro.html" in (html / "index.html").read_text()
    assert "Robust without adversarial training" in (html / "book" / "intro.html").read_text()
    for page in notebooks.code_pages():
        assert (html / f"{page}.html").exists(), page
    score = (html / "book" / "scorecard.html").read_text()
    for prefix in ("BASE", "DAM", "RBFI", "ABS", "BANG", "MFBM"):  # every chapter's rows are gathered
        assert f"{prefix}-1<" in score, prefix
    # MathJax is served from the vendored copy, not a CDN
    assert "_static/mathjax/tex-chtml.js" in (html / "book" / "protocol.html").read_text()
    # the book's downloads carry no grader checks (students must not get them from the book)
    sources = list((html / "_sources").rglob("*.ipynb"))
    assert sources, "no notebook downloads in the built book"
    for src in sources:
        assert "# check " not in src.read_text(), f"{src.name} holds hidden grader checks"
    # the front page opens with the findings, generated from the stored scorecards
    intro = (html / "book" / "intro.html").read_text()
    assert intro.count('class="verdict ') >= 6 and "Key findings" in intro
