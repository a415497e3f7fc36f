"""The strict book build (-W -n --keep-going) from the smoke-executed notebooks (runs last)."""

from __future__ import annotations

import pytest

from robustlib import notebooks, paths


@pytest.mark.book
def test_book_builds_strictly_at_smoke():
    notebooks.execute_pages("smoke", reuse=True, extra={"retrain": True})
    html = notebooks.build("smoke", html_dir=paths.build_dir() / "html-smoke")
    index = (html / "index.html").read_text()
    assert "Robust without adversarial training" in index
    for page in notebooks.code_pages():
        assert (html / f"{page}.html").exists(), page
    score = (html / "book" / "scorecard.html").read_text()
    assert "BASE-1" in score
    # MathJax is served from the vendored copy, not a CDN
    assert "_static/mathjax/tex-chtml.js" in (html / "book" / "protocol.html").read_text()
