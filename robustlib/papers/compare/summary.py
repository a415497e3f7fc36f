"""The numbers of the side-by-side chapter: one JSON-able record per model, the table, the ranking
in plain words, the front page's headline, and ``compare.json`` / ``compare.csv``.

Everything here reads the JSON form (``to_json``), so the chapter, the files and the front page
(``headline_html``, which reads the stored ``compare.json``) say the same thing.

Robust accuracy is the share of the evaluated images that every attack of the protocol, combined,
failed to fool within epsilon (clean errors count as fooled); the median minimal perturbation is
the median over the images of the smallest adversarial distance any attack found (0 for a clean
error). Both are upper bounds on the truth: a stronger attack can only lower them.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ... import protocol, store
from .experiments import Comparison, Model

THRESHOLDS = {"linf": (0.1, 0.3), "l2": (1.5, 2.0)}  # the papers' thresholds (BANG; ABS, MFBM)
MAIN = {"linf": 0.1, "l2": 1.5}  # where the ranking compares defences with the baselines
NORM_LABEL = {"linf": "L∞", "l2": "L2"}
TITLE = "The five defences side by side"
CHAPTER = "compare"
FILES = ("compare.json", "compare.csv")


# --- the authors' released numbers (ABS and its baselines) --------------------------------------

RELEASED_MODELS = {  # label in the ABS authors' release -> zoo model (None: not in the zoo)
    "ABS": "abs",
    "Binary ABS": "binary-abs",
    "Nearest neighbour": "nearest-neighbour",
    "CNN": None,
    "Binary CNN": None,
    "Madry et al. (ours)": None,
}


def released() -> list[dict[str, Any]]:
    """The ABS authors' "all attacks" numbers per model and norm (their released accuracy-distortion
    curves, as the ABS chapter reads them): the accuracy at the paper's threshold and the median."""
    from ..abs import claims as abs_claims

    out = []
    for label, model in RELEASED_MODELS.items():
        for norm in ("linf", "l2"):
            median, accuracy = abs_claims.PAPER[label][norm]
            out.append(
                {
                    "label": label.replace(" (ours)", ""),
                    "model": model,
                    "norm": norm,
                    "eps": abs_claims.THRESHOLDS[norm],
                    "accuracy": accuracy,
                    "median": median,
                    "source": abs_claims.RELEASED.format({"linf": "Linf", "l2": "L2"}[norm]),
                }
            )
    return out


# --- one record per model ------------------------------------------------------------------------


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 4)


def model_record(m: Model) -> dict[str, Any]:
    """Everything the chapter shows about one model (JSON-able; non-finite numbers are None)."""
    r = m.result
    rec: dict[str, Any] = {
        "model": m.name,
        "paper": m.paper,
        "role": m.role,
        "about": m.about,
        "n_images": len(r.labels),
        "clean_accuracy": _finite(r.clean_accuracy),
    }
    for norm in protocol.NORMS:
        if norm not in r.norms:
            rec[norm] = None
            continue
        strongest = r.strongest(norm)
        top = next(iter(strongest), None)
        rec[norm] = {
            "median": _finite(r.median(norm)),
            "accuracy": {f"{t:g}": _finite(r.accuracy_at(norm, t)) for t in THRESHOLDS[norm]},
            "strongest": top,
            "strongest_images": strongest.get(top, 0),
            "eps": [float(e) for e in r.config.grid(norm)],
            "curve": [_finite(a) for a in r.curve(norm).tolist()],
        }
    rec["flags"] = [{"kind": f.kind, "norm": f.norm, "message": f.message} for f in protocol.sanity_flags(r)]
    rec["seconds"] = {norm: {a: float(t) for a, t in r.seconds[norm].items()} for norm in r.norms}
    rec["families"] = dict(r.families)
    rec["claimed"] = [
        {
            **{k: c[k] for k in ("norm", "eps", "accuracy", "source") if k in c},
            "ours": _finite(r.accuracy_at(c["norm"], c["eps"])),
        }
        for c in m.claimed
        if c.get("norm") in r.norms
    ]
    return rec


def to_json(comparison: Comparison) -> dict[str, Any]:
    """The whole comparison as one JSON-able dict (what ``compare.json`` holds)."""
    models = [model_record(m) for m in comparison.models]
    data = {
        "chapter": CHAPTER,
        "profile": comparison.profile,
        "thresholds": {n: list(t) for n, t in THRESHOLDS.items()},
        "models": models,
        "released": released(),
        "missing": dict(comparison.missing),
    }
    data["ranking"] = {norm: [m["model"] for m in ranked(data, norm)] for norm in protocol.NORMS}
    data["text"] = {"ranking": ranking(data), "headline": headline(data)}
    return data


# --- ranking ---------------------------------------------------------------------------------------


def _median(rec: Mapping[str, Any], norm: str) -> float:
    m = rec[norm]["median"]
    return math.inf if m is None else m


def _acc(rec: Mapping[str, Any], norm: str, eps: float) -> float:
    return rec[norm]["accuracy"][f"{eps:g}"]


def ranked(data: Mapping[str, Any], norm: str) -> list[dict[str, Any]]:
    """The models evaluated in ``norm``, most robust first: by median minimal perturbation, ties
    broken by the accuracy at the larger threshold."""
    rows = [m for m in data["models"] if m.get(norm)]
    return sorted(rows, key=lambda m: (_median(m, norm), _acc(m, norm, THRESHOLDS[norm][-1])), reverse=True)


def sampling_error(accuracy: float, n: int) -> float:
    """The binomial standard error of an accuracy measured on ``n`` images (floored at half an
    image, so that 0 % and 100 % carry an error too)."""
    p = min(max(accuracy, 0.5 / n), 1 - 0.5 / n)
    return math.sqrt(p * (1 - p) / n)


def versus(a: Mapping[str, Any], b: Mapping[str, Any], norm: str, eps: float) -> int:
    """+1 if ``a`` keeps more images than ``b`` at ``norm`` ``eps`` by more than twice the
    sampling error of the difference, -1 if fewer, 0 if within it."""
    pa, pb = _acc(a, norm, eps), _acc(b, norm, eps)
    se = math.hypot(sampling_error(pa, a["n_images"]), sampling_error(pb, b["n_images"]))
    return 0 if abs(pa - pb) <= 2 * se else (1 if pa > pb else -1)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}\u00a0%"  # no break between number and sign


def _num(x: float | None) -> str:
    return "∞" if x is None else f"{x:.2f}"


def _names(rows: Sequence[Mapping[str, Any]]) -> str:
    names = [r["model"] for r in rows]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _n_max(data: Mapping[str, Any]) -> int:
    return max((m["n_images"] for m in data["models"]), default=0)


def _described(rec: Mapping[str, Any], norm: str, eps: float, n_max: int = 0) -> str:
    """ "abs (median 1.74, 50 % at ε = 1.5, on 10 images, flagged)": the numbers and what qualifies them."""
    notes = [f"median {_num(rec[norm]['median'])}", f"{_pct(_acc(rec, norm, eps))} at ε = {eps:g}"]
    if rec["n_images"] < n_max:
        notes.append(f"on {rec['n_images']} images")
    if any(f["norm"] == norm for f in rec["flags"]):
        notes.append("flagged")
    return f"{rec['model']} ({', '.join(notes)})"


def _images(data: Mapping[str, Any]) -> str:
    """ "the first 200 test images (abs and binary-abs on the first 10, mfbm on 50)"."""
    n_max = _n_max(data)
    fewer: dict[int, list[Mapping[str, Any]]] = {}
    for m in data["models"]:
        if m["n_images"] < n_max:
            fewer.setdefault(m["n_images"], []).append(m)
    text = f"the first {n_max} test images"
    if fewer:
        text += " (" + ", ".join(f"{_names(ms)} on the first {n}" for n, ms in sorted(fewer.items())) + ")"
    return text


def beats_baseline(data: Mapping[str, Any], norm: str) -> dict[str, Any] | None:
    """The defences against the best standard baseline at ``MAIN[norm]``: ``{"baseline": record,
    "above": [...], "within": [...], "below": [...]}`` (None without a baseline or a defence)."""
    eps = MAIN[norm]
    rows = [m for m in data["models"] if m.get(norm)]
    bases = [m for m in rows if m["role"] == "baseline"]
    defences = [m for m in rows if m["role"] == "defence"]
    if not bases or not defences:
        return None
    base = max(bases, key=lambda m: (_acc(m, norm, eps), _median(m, norm)))
    out: dict[str, Any] = {"baseline": base, "above": [], "within": [], "below": []}
    for d in sorted(defences, key=lambda m: -_acc(m, norm, eps)):
        out[{1: "above", 0: "within", -1: "below"}[versus(d, base, norm, eps)]].append(d)
    return out


def ranking(data: Mapping[str, Any]) -> list[str]:
    """The ranking in plain words, generated from the numbers: one paragraph per norm, then the
    flags and the clean accuracies (plain text, one string per paragraph)."""
    out = []
    for norm in protocol.NORMS:
        rows = ranked(data, norm)
        if not rows:
            continue
        label, eps = NORM_LABEL[norm], MAIN[norm]
        order = ", ".join(f"{i}. {m['model']} {_num(m[norm]['median'])}" for i, m in enumerate(rows, 1))
        text = f"{label}, by median minimal perturbation over all attacks (larger is more robust): {order}."
        if len(rows) > 1:
            most, least = (_described(r, norm, eps, _n_max(data)) for r in (rows[0], rows[-1]))
            text += f" Most robust: {most}; least: {least}."
        vs = beats_baseline(data, norm)
        if vs is not None:
            n_def = sum(len(vs[k]) for k in ("above", "within", "below"))
            keeps = "keeps" if len(vs["above"]) == 1 else "keep"
            parts = [
                f"At {label} ε = {eps:g}, {len(vs['above'])} of {n_def} defences {keeps} more images than the "
                f"best standard baseline, {_described(vs['baseline'], norm, eps, _n_max(data))}, by more than twice the "
                "sampling error"
            ]
            parts[0] += f" ({_names(vs['above'])})" if vs["above"] else ""
            if vs["within"]:
                parts.append(f"{_names(vs['within'])} {'is' if len(vs['within']) == 1 else 'are'} within it")
            if vs["below"]:
                parts.append(f"{_names(vs['below'])} {'falls' if len(vs['below']) == 1 else 'fall'} below it")
            text += " " + "; ".join(parts) + "."
        out.append(text)
    flagged = [m for m in data["models"] if m["flags"]]
    if flagged:
        kinds = "; ".join(f"{m['model']} ({_flag_kinds(m, ', ')})" for m in flagged)
        out.append(
            f"Flags: {kinds}. A flagged number is the protocol's best effort, not a verified result: "
            "robustness there may be lower than shown."
        )
    if data["models"]:
        clean = sorted(data["models"], key=lambda m: m["clean_accuracy"])
        out.append(
            f"Clean accuracy on the evaluated images ranges from {_pct(clean[0]['clean_accuracy'])} "
            f"({clean[0]['model']}) to {_pct(clean[-1]['clean_accuracy'])} ({clean[-1]['model']})."
        )
    return out


def headline(data: Mapping[str, Any]) -> str:
    """One line for the front page: the most robust model per norm, and how many defences beat the
    best standard baseline beyond sampling error (plain text)."""
    if not data["models"]:
        return "no model has a stored yardstick result yet."
    parts = []
    for norm in ("l2", "linf"):
        rows = ranked(data, norm)
        if rows:
            parts.append(f"in {NORM_LABEL[norm]} {_described(rows[0], norm, MAIN[norm], _n_max(data))}")
    text = (
        f"{len(data['models'])} models through one protocol on {_images(data)}, profile {data['profile']}. "
        "Most robust: " + "; ".join(parts) + "."
    )
    beats = []
    for norm in ("l2", "linf"):
        vs = beats_baseline(data, norm)
        if vs is not None:
            n_def = sum(len(vs[k]) for k in ("above", "within", "below"))
            beats.append(f"{len(vs['above'])} of {n_def} at {NORM_LABEL[norm]} ε = {MAIN[norm]:g}")
    if beats:
        text += (
            " Defences that beat the best standard baseline by more than twice the sampling error: "
            + ", ".join(beats)
            + "."
        )
    flagged = sum(bool(m["flags"]) for m in data["models"])
    if flagged:
        text += f" {flagged} of {len(data['models'])} models carry a sanity flag."
    if data["missing"]:
        text += f" Not measured yet: {', '.join(data['missing'])}."
    return text


# --- tables ----------------------------------------------------------------------------------------

TABLE_COLUMNS = (
    "model",
    "chapter",
    "clean",
    "L∞ 0.1",
    "L∞ 0.3",
    "L2 1.5",
    "L2 2.0",
    "median L∞",
    "median L2",
    "strongest L∞ / L2",
    "flags",
    "images",
)


def _flag_kinds(rec: Mapping[str, Any], sep: str = "; ") -> str:
    return sep.join(sorted({f"{NORM_LABEL[f['norm']]} {f['kind']}" for f in rec["flags"]}))


def _short_flags(rec: Mapping[str, Any]) -> str:
    return _flag_kinds(rec) or "—"


def table_rows(data: Mapping[str, Any]) -> list[dict[str, str]]:
    """The chapter's table: one row per model, formatted (``TABLE_COLUMNS``)."""
    rows = []
    for m in data["models"]:
        row = {"model": m["model"], "chapter": m["paper"], "clean": _pct(m["clean_accuracy"])}
        for norm in protocol.NORMS:
            for t in THRESHOLDS[norm]:
                row[f"{NORM_LABEL[norm]} {t:.1f}"] = _pct(_acc(m, norm, t)) if m.get(norm) else "n/a"
            row[f"median {NORM_LABEL[norm]}"] = _num(m[norm]["median"]) if m.get(norm) else "n/a"
        row["strongest L∞ / L2"] = " / ".join((m[n] or {}).get("strongest") or "—" for n in protocol.NORMS)
        row["flags"], row["images"] = _short_flags(m), str(m["n_images"])
        rows.append({c: row[c] for c in TABLE_COLUMNS})
    return rows


COST_COLUMNS = ("APGD-CE", "APGD-DLR", "APGD-T", "Square", "HopSkipJump", "transfer", "noise")
_COST_OF = dict(zip(("apgd-ce", "apgd-dlr", "apgd-t", "square", "hsja", "transfer", "noise"), COST_COLUMNS))


def cost_rows(data: Mapping[str, Any]) -> list[dict[str, str]]:
    """What each model's evaluation took: wall seconds per attack of the suite (both norms
    added), the defence's own attacks together, the trivial bound, the total, and the images."""
    rows = []
    for m in data["models"]:
        per = {c: 0.0 for c in (*COST_COLUMNS, "the defence's own", "trivial bound")}
        for norm_seconds in (m.get("seconds") or {}).values():
            for attack, t in norm_seconds.items():
                col = "trivial bound" if attack == protocol.TRIVIAL else _COST_OF.get(attack, "the defence's own")
                per[col] += t
        total = sum(per.values())
        row = {"model": m["model"], "images": str(m["n_images"])}
        row |= {c: (f"{t:.0f}" if t >= 1 else f"{t:.1f}") if t else "—" for c, t in per.items()}
        row["total"] = f"{total:.0f} s ({total / max(m['n_images'], 1):.2f} s per image)"
        rows.append(row)
    return rows


def is_claimed(point: Mapping[str, Any], claimed: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a released point (norm, eps, accuracy) is already one of the model's claimed points
    (the ABS chapter claims its released numbers): shown once."""
    return any(
        c["norm"] == point["norm"]
        and math.isclose(c["eps"], point["eps"])
        and math.isclose(c["accuracy"], point["accuracy"], abs_tol=1e-6)
        for c in claimed
    )


def claims_rows(data: Mapping[str, Any]) -> list[dict[str, str]]:
    """Each paper's claimed operating point beside ours at the same epsilon (and the ABS authors'
    released numbers for the zoo models they cover)."""
    by_name = {m["model"]: m for m in data["models"]}
    rows = []
    for m in data["models"]:
        for c in m["claimed"]:
            rows.append(
                {
                    "model": m["model"],
                    "threat": f"{NORM_LABEL[c['norm']]} ε = {c['eps']:g}",
                    "paper": _pct(c["accuracy"]),
                    "ours": _pct(c["ours"]),
                    "source": c.get("source", ""),
                }
            )
    for r in data["released"]:
        m = by_name.get(r["model"])
        if m is not None and m.get(r["norm"]) and not is_claimed(r, m["claimed"]):
            rows.append(
                {
                    "model": m["model"],
                    "threat": f"{NORM_LABEL[r['norm']]} ε = {r['eps']:g}",
                    "paper": _pct(r["accuracy"]),
                    "ours": _pct(_acc(m, r["norm"], r["eps"])),
                    "source": "the ABS authors' released all-attacks curve",
                }
            )
    return rows


def csv_rows(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per model (fractions, not percentages; empty where not available)."""
    rows = []
    for m in data["models"]:
        row: dict[str, Any] = {k: m[k] for k in ("model", "paper", "role", "n_images", "clean_accuracy")}
        for norm in protocol.NORMS:
            rec = m.get(norm) or {}
            for t in THRESHOLDS[norm]:
                row[f"{norm}_accuracy_{t:g}"] = (rec.get("accuracy") or {}).get(f"{t:g}")
            row[f"{norm}_median"] = rec.get("median")
            row[f"{norm}_strongest"] = rec.get("strongest")
        row["flags"] = "; ".join(f"{f['norm']}: {f['kind']}" for f in m["flags"])
        rows.append(row)
    return rows


def to_csv(data: Mapping[str, Any]) -> str:
    rows = csv_rows(data)
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in rows)
    return buf.getvalue()


# --- files -----------------------------------------------------------------------------------------


def paths_for(profile: str) -> tuple[Path, Path]:
    folder = store.artifact_dir(CHAPTER, profile)
    return folder / FILES[0], folder / FILES[1]


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write(data: Mapping[str, Any], profile: str, *, seed: int = 0, device: str = "cpu") -> tuple[Path, Path]:
    """Write ``compare.json`` (the numbers, with provenance) and ``compare.csv`` (one row per model)
    beside the store's results, atomically, and list them in MANIFEST. Unchanged numbers keep the
    files as they are (so a rerun leaves git clean)."""
    js, cs = paths_for(profile)
    csv_text = to_csv(data)
    if js.exists() and cs.exists():
        old = json.loads(js.read_text())
        old.pop("provenance", None)
        if old == json.loads(json.dumps(data)) and cs.read_text() == csv_text:
            return js, cs
    body = {**data, "provenance": store.provenance(profile=profile, seed=seed, device=device)}
    _write_text(cs, csv_text)
    _write_text(js, json.dumps(body, indent=1, allow_nan=False, ensure_ascii=False) + "\n")
    store.update_manifest([js, cs])
    return js, cs


def load(profile: str = "quick") -> dict[str, Any] | None:
    """The stored ``compare.json`` at ``profile`` (None when the chapter has not run there)."""
    js, _ = paths_for(profile)
    return json.loads(js.read_text()) if js.exists() else None


# --- HTML ----------------------------------------------------------------------------------------


def headline_html(profile: str = "quick", *, link: str = "../notebooks/compare.html") -> str:
    """The front page's line about this chapter, from the stored ``compare.json``."""
    data = load(profile)
    title = f'<a href="{link}"><strong>{TITLE}</strong></a>'
    if data is None:
        return (
            f'<p class="compare-headline">{title}: not computed at <code>{html.escape(profile)}</code> yet '
            f"(<code>python -m robustlib compute compare --profile {html.escape(profile)}</code>).</p>"
        )
    return f'<p class="compare-headline">{title}: {html.escape(headline(data))}</p>'


def missing_html(data: Mapping[str, Any]) -> str:
    """A warning naming the models (or chapters) without a stored yardstick result, or nothing."""
    if not data["missing"]:
        return ""
    items = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>" for k, v in data["missing"].items())
    return (
        '<div class="admonition warning"><p class="admonition-title">Not shown</p><p>These have no '
        f"stored yardstick result at <code>{html.escape(data['profile'])}</code>:</p><ul>{items}</ul></div>"
    )


def ranking_html(data: Mapping[str, Any]) -> str:
    return "".join(f"<p>{html.escape(p)}</p>" for p in data["text"]["ranking"])


def headline_box(data: Mapping[str, Any]) -> str:
    """The box the chapter opens with: the headline, and that this chapter judges no claim."""
    scale = {
        "smoke": "the <code>smoke</code> profile: tiny data that only exercises the code; these numbers mean nothing",
        "quick": "the <code>quick</code> profile: the papers' models at reduced scale",
        "paper": "the <code>paper</code> profile: the papers' own settings",
    }[data["profile"]]
    return (
        '<div class="admonition verdict-box"><p class="admonition-title">In short</p>'
        f"<p>{html.escape(headline(data))}</p><p>Measured at {scale}. Each paper's claims are judged "
        "in its own chapter, on these same results.</p></div>"
    )


def models_rows(data: Mapping[str, Any]) -> list[dict[str, str]]:
    """The zoo models shown: name, chapter, role, what it is."""
    return [
        {"model": m["model"], "chapter": m["paper"], "role": m["role"], "what it is": m["about"]}
        for m in data["models"]
    ]
