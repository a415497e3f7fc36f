"""Tables for the book: results tables beside the papers' numbers, and the scorecards."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

from . import store

NOT_AVAILABLE = "not available"  # a paper cell missing from the paper text available to the project


def fmt(value: Any, digits: int = 2, pct: bool = False) -> str:
    """Format a number for a table: ``pct`` turns a fraction into a percentage; None -> n/a."""
    if value is None:
        return NOT_AVAILABLE
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    if pct:
        return f"{100 * value:.{max(digits - 1, 0)}f} %"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def html_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, caption: str | None = None) -> str:
    """A plain HTML table (renders in Jupyter and in the book without pandas styling)."""
    if not rows:
        return "<p><em>(no rows)</em></p>"
    columns = list(columns or rows[0].keys())
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>" for r in rows
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f'<table class="robustlib-table">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def show_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
               caption: str | None = None) -> None:
    """Display ``html_table`` in a notebook (returns nothing, so it is shown once)."""
    from IPython.display import HTML, display

    display(HTML(html_table(rows, columns, caption)))


def scorecard_rows(cards: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, str]]:
    """One row per (notebook, profile, target) from every scorecard in the store."""
    cards = store.load_scorecards() if cards is None else cards
    rows = []
    for card in cards:
        for t in card["targets"]:
            rows.append({"notebook": card["notebook"], "profile": card["profile"], "id": t["id"],
                         "claim": t["claim"], "paper": t["paper"], "ours": t["ours"], "verdict": t["verdict"]})
    return rows


def verdict_counts(cards: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    cards = store.load_scorecards() if cards is None else cards
    out = []
    for card in cards:
        counts = {v: 0 for v in store.VERDICTS}
        for t in card["targets"]:
            counts[t["verdict"]] += 1
        out.append({"notebook": card["notebook"], "profile": card["profile"], **counts,
                    "commit": card["provenance"].get("git_commit", "")[:12]})
    return out
