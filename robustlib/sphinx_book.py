"""A small Sphinx extension for the book: switch live code off cleanly.

Jupyter Book always loads ``sphinx_thebe``, which adds its configuration script on every page (and,
on our builds, twice: the browser then logs "Identifier 'THEBE_JS_URL' has already been
declared"). The book is static (no Binder or JupyterHub of this project exists), so the thebe
scripts are dropped from every page.
"""

from __future__ import annotations

from typing import Any


def _drop_thebe(app: Any, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    scripts = context.get("script_files")
    if scripts is None:
        return
    kept = []
    for js in scripts:
        body = getattr(js, "attributes", {}).get("body", "") if hasattr(js, "attributes") else ""
        name = str(js)
        if "THEBE_JS_URL" in body or "thebe" in name.lower():
            continue
        kept.append(js)
    context["script_files"] = kept


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
