"""Every page of the built book in a real browser (Playwright driving Debian's chromium).

Runs after the strict book build (``test_z_book``) against its smoke build (``_build/html-smoke``);
``ROBUSTLIB_BOOK_HTML=_build/html`` points it at the quick build of ``make book``. Fails on: a
console error, a MathJax error, an image that did not load, an element wider than its column, a
broken internal link, a figure shown at less than two thirds of its width, a page with more or
fewer than one search field, a front page without findings.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlparse

import pytest

from robustlib import notebooks, paths

CHROMIUM = "/usr/bin/chromium"
MIN_FIGURE_SCALE = 2 / 3  # a figure shown smaller than this is unreadable (its text shrinks with it)
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Run in the page: everything wrong with it that the DOM can tell.
CHECKS = """() => {
  const out = {images: [], small: [], wide: [], math: [], links: [], search: 0};
  const article = document.querySelector('article.bd-article') || document.querySelector('main');
  const right = article.getBoundingClientRect().right;
  const scrolls = (el) => { for (let p = el.parentElement; p && p !== article; p = p.parentElement) {
      const s = getComputedStyle(p).overflowX; if (s === 'auto' || s === 'scroll') return true; } return false; };
  for (const img of article.querySelectorAll('img')) {
    if (!img.complete || img.naturalWidth === 0) { out.images.push(img.src); continue; }
    const shown = img.getBoundingClientRect().width;
    if (img.naturalWidth > 80 && shown < img.naturalWidth * MIN_SCALE)
      out.small.push(`${img.src.split('/').pop()} at ${Math.round(100 * shown / img.naturalWidth)} %`);
  }
  for (const el of article.querySelectorAll('table, img, mjx-container, pre, .cell_output > *, figure')) {
    if (el.getBoundingClientRect().right > right + 2 && !scrolls(el))
      out.wide.push(`${el.tagName.toLowerCase()} ${Math.round(el.getBoundingClientRect().right - right)} px`);
  }
  for (const el of document.querySelectorAll('mjx-merror, .MathJax_Error'))
    out.math.push(el.textContent.slice(0, 80));
  for (const a of document.querySelectorAll('a[href]')) out.links.push(a.href);
  for (const el of document.querySelectorAll('.search-button-field, input[type=search]'))
    if (el.getClientRects().length > 0) out.search += 1;  // laid out (maybe scrolled away), not display:none
  return out;
}""".replace("MIN_SCALE", f"{MIN_FIGURE_SCALE:.4f}")


def _html_root() -> Path:
    root = Path(os.environ.get("ROBUSTLIB_BOOK_HTML", paths.build_dir() / "html-smoke"))
    return root if root.is_absolute() else paths.root() / root


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The built book served on loopback (a port of its own; stops with the module)."""
    root = _html_root()
    if not (root / "index.html").exists():
        pytest.fail(f"no built book at {root}: run the book test first (it builds it)")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[assignment]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is installed by make venv")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def _visit(browser, url: str) -> tuple[dict, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url, wait_until="load")
    page.wait_for_function("() => !window.MathJax || !MathJax.startup || MathJax.startup.promise", timeout=15000)
    page.evaluate("() => window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
    found = page.evaluate(CHECKS)
    page.close()
    return found, errors


def _local_target(site: str, href: str) -> Path | None:
    """The file an internal link points at (None for external links)."""
    url, _ = urldefrag(href)
    if not url.startswith(site):
        return None
    rel = unquote(urlparse(url).path).lstrip("/")
    target = _html_root() / rel
    return target / "index.html" if target.is_dir() else target


PAGES = notebooks.toc_pages()


@pytest.mark.book
@pytest.mark.parametrize("page", PAGES)
def test_page_renders_cleanly_in_a_browser(browser, site, page):
    found, errors = _visit(browser, f"{site}{page}.html")
    assert not errors, f"console errors: {errors[:3]}"
    assert not found["math"], f"MathJax errors: {found['math'][:3]}"
    assert not found["images"], f"images that did not load: {found['images'][:3]}"
    assert not found["wide"], f"elements wider than the column: {found['wide'][:5]}"
    assert not found["small"], f"figures shown below {MIN_FIGURE_SCALE:.0%} of their width: {found['small'][:5]}"
    broken = sorted({h for h in found["links"] if (t := _local_target(site, h)) is not None and not t.exists()})
    assert not broken, f"broken internal links: {broken[:5]}"
    assert found["search"] == 1, f"{found['search']} search fields on the page (one is enough)"


@pytest.mark.book
def test_front_page_opens_with_the_findings(browser, site):
    page = browser.new_page()
    page.goto(f"{site}book/intro.html")
    items = page.locator("ul.key-findings li")
    assert items.count() >= 6, "the front page has no key findings"
    first = page.locator("ul.key-findings").bounding_box()
    assert first is not None and first["y"] < 2500, "the findings are not near the top of the front page"
    assert page.locator("ul.key-findings .verdict").count() >= 6
    page.close()
