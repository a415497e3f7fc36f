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


def html_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, caption: str | None = None
) -> str:
    """A plain HTML table (renders in Jupyter and in the book without pandas styling)."""
    if not rows:
        return "<p><em>(no rows)</em></p>"
    columns = list(columns or rows[0].keys())
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>" for r in rows
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    # wrapped: a table wider than the column scrolls in its own box instead of overflowing the page
    table = f'<table class="robustlib-table">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return f'<div class="table-wrap">{table}</div>'


def show_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, caption: str | None = None
) -> None:
    """Display ``html_table`` in a notebook (returns nothing, so it is shown once)."""
    from IPython.display import HTML, display

    display(HTML(html_table(rows, columns, caption)))


def scorecard_rows(cards: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, str]]:
    """One row per (notebook, profile, target) from every scorecard in the store."""
    cards = store.load_scorecards() if cards is None else cards
    rows = []
    for card in cards:
        for t in card["targets"]:
            rows.append(
                {
                    "notebook": card["notebook"],
                    "profile": card["profile"],
                    "id": t["id"],
                    "claim": t["claim"],
                    "paper": t["paper"],
                    "ours": t["ours"],
                    "verdict": t["verdict"],
                }
            )
    return rows


def verdict_counts(cards: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    cards = store.load_scorecards() if cards is None else cards
    out = []
    for card in cards:
        counts = {v: 0 for v in store.VERDICTS}
        for t in card["targets"]:
            counts[t["verdict"]] += 1
        out.append(
            {
                "notebook": card["notebook"],
                "profile": card["profile"],
                **counts,
                "commit": card["provenance"].get("git_commit", "")[:12],
            }
        )
    return out


# --- the book's overview pages: key findings and the verdict matrix ------------------------------

CHAPTER_TITLES = {
    "baselines": "Baselines",
    "rbfi": "RBFI units",
    "dam": "Dense associative memory",
    "abs": "Analysis by synthesis (ABS)",
    "bang": "BANG",
    "mfbm": "Mean-field Boltzmann networks",
}
VERDICT_CLASS = {v: "verdict-" + v.replace(" ", "-") for v in store.VERDICTS}


def _ordered(cards: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Cards in the book's chapter order (``papers.NAMES``), then by profile."""
    from . import papers

    rank = {n: i for i, n in enumerate(papers.NAMES)}
    profiles = {"quick": 0, "paper": 1, "smoke": 2}
    return sorted(cards, key=lambda c: (rank.get(c["notebook"], 99), profiles.get(c["profile"], 9)))


def chapter_link(notebook: str, anchor: str = "scorecard", *, base: str = "../notebooks/") -> str:
    """A link from a ``book/`` page to a chapter section (``#scorecard`` by default)."""
    return f"{base}{notebook}.html" + (f"#{anchor}" if anchor else "")


def verdict_badge(verdict: str) -> str:
    return f'<span class="verdict {VERDICT_CLASS[verdict]}">{html.escape(verdict)}</span>'


def verdict_legend() -> str:
    return '<p class="verdict-legend">' + " ".join(verdict_badge(v) for v in store.VERDICTS) + "</p>"


def headline(notebook: str, card: Mapping[str, Any]) -> Mapping[str, Any]:
    """The row a chapter's finding is summarised by: its claims module's ``HEADLINE`` id (the
    paper's robustness claim), else its first row."""
    from . import papers

    wanted = None
    if notebook in papers.NAMES:
        wanted = getattr(papers.get(notebook, "claims"), "HEADLINE", None)
    rows = list(card["targets"])
    return next((t for t in rows if t["id"] == wanted), rows[0])


def key_findings(cards: Sequence[Mapping[str, Any]] | None = None, *, profile: str = "quick") -> str:
    """One line per chapter, from the stored scorecards: claim -> what we measured -> verdict,
    linked to the chapter's scorecard; counts of every verdict beside it (HTML)."""
    cards = [c for c in (store.load_scorecards() if cards is None else cards) if c["profile"] == profile]
    items = []
    for card in _ordered(cards):
        nb, row = card["notebook"], headline(card["notebook"], card)
        counts = {v: sum(t["verdict"] == v for t in card["targets"]) for v in store.VERDICTS}
        tally = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        items.append(
            f'<li><a href="{chapter_link(nb)}"><strong>{html.escape(CHAPTER_TITLES.get(nb, nb))}</strong></a>: '
            f"{html.escape(row['claim'])} (paper: {html.escape(row['paper'])}) &rarr; "
            f"ours at <code>{html.escape(profile)}</code>: {html.escape(row['ours'])} &rarr; "
            f'{verdict_badge(row["verdict"])} <span class="tally">(all {len(card["targets"])} claims: {tally})</span></li>'
        )
    if not items:
        return f"<p><em>No {html.escape(profile)} scorecard is stored yet.</em></p>"
    return '<ul class="key-findings">' + "".join(items) + "</ul>"


def verdict_matrix(
    cards: Sequence[Mapping[str, Any]] | None = None,
    *,
    profiles: Sequence[str] = ("quick", "paper"),
    link_base: str = "../notebooks/",
) -> str:
    """Every claim of every chapter as one row; one colour-coded verdict column per profile that has
    results (``quick`` and ``paper`` side by side), our number, the criterion, and a link to the
    chapter section that computed it (HTML)."""
    cards = [c for c in (store.load_scorecards() if cards is None else cards) if c["profile"] in profiles]
    shown = [p for p in profiles if any(c["profile"] == p for c in cards)]
    by_claim: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for card in _ordered(cards):
        for t in card["targets"]:
            by_claim.setdefault((card["notebook"], t["id"]), {})[card["profile"]] = t
    head = "".join(f"<th>{html.escape(h)}</th>" for h in ["chapter", "claim", "paper", *shown, "ours", "criterion"])
    body = []
    for (nb, cid), per in by_claim.items():
        t = per.get(shown[0]) or next(iter(per.values()))
        cells = [
            f'<a href="{chapter_link(nb, base=link_base)}">{html.escape(cid)}</a>',
            html.escape(t["claim"]),
            html.escape(t["paper"]),
        ]
        cells += [verdict_badge(per[p]["verdict"]) if p in per else "" for p in shown]
        ours = "<br>".join(f"<em>{p}</em>: {html.escape(per[p]['ours'])}" for p in shown if p in per)
        cells += [ours, html.escape(t.get("criterion", ""))]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    if not body:
        return "<p><em>No scorecard is stored yet.</em></p>"
    return (
        f'<div class="table-wrap"><table class="robustlib-table verdict-matrix"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def verdict_box(notebook: str, rows: Sequence[Mapping[str, Any]], profile: str) -> str:
    """The box a chapter opens with: its headline claim and verdict, the tally of all its claims,
    and the scale they were measured at (HTML admonition, from this run's scorecard rows)."""
    card = {"targets": list(rows)}
    row = headline(notebook, card)
    counts = {v: sum(t["verdict"] == v for t in rows) for v in store.VERDICTS}
    tally = " ".join(f"{verdict_badge(v)}&nbsp;{n}" for v, n in counts.items() if n)
    scale = {
        "smoke": "the <code>smoke</code> profile: tiny data that only exercises the code; these verdicts mean nothing",
        "quick": "the <code>quick</code> profile: the paper's models and attacks at reduced scale",
        "paper": "the <code>paper</code> profile: the paper's own settings",
    }[profile]
    return (
        '<div class="admonition verdict-box"><p class="admonition-title">Verdict</p>'
        f"<p><strong>{html.escape(row['claim'])}</strong> (paper: {html.escape(row['paper'])}): "
        f"{verdict_badge(row['verdict'])}<br>ours: {html.escape(row['ours'])}</p>"
        f"<p>All {len(rows)} claims: {tally} &mdash; measured at {scale}; the scorecard at the end of "
        "this chapter has every claim with its criterion.</p></div>"
    )


def scale_note(cards: Sequence[Mapping[str, Any]] | None = None) -> str:
    """Which scale the verdicts rest on: the chapters with a ``paper`` scorecard, and those without."""
    from . import papers

    cards = store.load_scorecards() if cards is None else cards
    have = [n for n in papers.NAMES if any(c["notebook"] == n and c["profile"] == "paper" for c in cards)]
    missing = [CHAPTER_TITLES[n] for n in papers.NAMES if n not in have]
    if not have:
        return (
            '<div class="admonition warning"><p class="admonition-title">Reduced scale</p><p>Every verdict '
            "in this book comes from the <code>quick</code> profile: the papers' models and attacks at reduced "
            "scale on a 2-core CPU. No chapter has a <code>paper</code>-profile result yet (see "
            '<a href="running.html">Running the notebooks</a> for what it takes).</p></div>'
        )
    return (
        f"<p><code>paper</code>-profile scorecards exist for {', '.join(CHAPTER_TITLES[n] for n in have)}"
        + (f"; not yet for {', '.join(missing)}" if missing else "")
        + ".</p>"
    )


def provenance_note(cards: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The commit this page was built from and the commit each scorecard was computed at."""
    cards = store.load_scorecards() if cards is None else cards
    items = "".join(
        f"<li>{html.escape(CHAPTER_TITLES.get(c['notebook'], c['notebook']))}, <code>{html.escape(c['profile'])}</code>: "
        f"computed at commit <code>{html.escape(c['provenance'].get('git_commit', 'unknown')[:12])}</code> on "
        f"{html.escape(c['provenance'].get('created', '?')[:10])}</li>"
        for c in _ordered(cards)
    )
    return (
        f"<p>This page was built from commit <code>{html.escape(store.git_commit()[:12])}</code>.</p>"
        f'<ul class="provenance">{items}</ul>'
    )


def show_html(text: str) -> None:
    """Display an HTML fragment in a notebook (and so in the book)."""
    from IPython.display import HTML, display

    display(HTML(text))
