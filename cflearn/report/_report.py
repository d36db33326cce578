"""The self-contained HTML report of a run: one file, images inline, no network, no JavaScript.

``cflearn fit`` writes ``report.html`` next to ``metrics.json``; ``cflearn report RUN_DIR``
(re)builds it from the run folder's ``metrics.json``, ``loss.png`` and ``model.safetensors``.
Every string that comes from the data (IDs, titles, genres, column names) is HTML-escaped.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
from io import BytesIO
from pathlib import Path
from typing import Any

import pandas as pd

from .._errors import CflearnError, ConfigError, first_line
from .._io import atomic_write_bytes
from ..data._vocab import item_titles
from ..metrics import better
from ..serve._collab import CollabModel
from ..serve._export import load
from ..serve._recommend import recommend, similar_items

__all__ = ["write_report", "report_html", "run_samples"]

_CHANCE = "global mean"
"""The baseline whose scores all tie: its lists are random, so they cover everything by chance."""


def run_samples(cf: CollabModel, data: Any, *, n_users: int = 3, n_top: int = 5) -> dict[str, Any]:
    """What the report shows that only the training data knows: three sample users' own top-rated items.

    Saved in ``metrics.json`` (``"samples"``), so ``cflearn report`` can rebuild the page from the
    run folder alone. The users are the ones at the 25th, 50th and 75th percentile of activity.
    """
    train = data.train
    counts = train.groupby(data.user).size().sort_values(kind="stable")
    if counts.empty:
        return {"users": []}
    picks = list(dict.fromkeys(counts.index[min(len(counts) - 1, int(q * len(counts)))] for q in (0.25, 0.5, 0.75)))
    users = []
    for u in picks[:n_users]:
        rows = train[train[data.user] == u].sort_values(data.rating, ascending=False, kind="stable").head(n_top)
        users.append({"user": _plain(u), "n_ratings": int(counts[u]),
                      "top_rated": [[_plain(i), float(r)] for i, r in zip(rows[data.item], rows[data.rating])]})
    return {"users": users}


def write_report(run_dir: str | Path, *, model: CollabModel | None = None, out: str | Path | None = None) -> Path:
    """Write ``report.html`` (or ``out``) for the run in ``run_dir``, atomically.

    Args:
        run_dir: a folder written by ``cflearn fit`` (``metrics.json``, ``loss.png``, ``model.safetensors``).
        model: the run's model when already in memory (else loaded from the folder).
        out: where to write (default ``run_dir/report.html``).

    Raises:
        ConfigError: the folder is not a cflearn run (the message names the missing file).
    """
    run_dir = Path(run_dir)
    metrics_path = run_dir / "metrics.json"
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a folder; give the --out folder of a `cflearn fit` run")
    if not metrics_path.is_file():
        raise ConfigError(f"{run_dir} has no metrics.json: it is not a `cflearn fit` run folder")
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise ConfigError(f"{metrics_path} is not readable JSON ({first_line(e)[:120]}); rerun `cflearn fit`") from None
    if not isinstance(metrics, dict):
        raise ConfigError(f"{metrics_path} is not as `cflearn fit` writes it (not a JSON object); rerun `cflearn fit`")
    if model is None:
        model = load(run_dir / "model.safetensors")
    loss_png = (run_dir / "loss.png").read_bytes() if (run_dir / "loss.png").is_file() else None
    try:
        page = report_html(metrics, model, loss_png)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as e:
        if isinstance(e, CflearnError):
            raise
        raise ConfigError(f"{metrics_path} is not as `cflearn fit` writes it ({type(e).__name__}: "
                          f"{first_line(e)[:120]}); rerun `cflearn fit` to write it again") from None
    return atomic_write_bytes(Path(out) if out is not None else run_dir / "report.html", page.encode("utf-8"))


def report_html(metrics: dict[str, Any], cf: CollabModel, loss_png: bytes | None = None) -> str:
    """The report page as one HTML string (see the module docstring)."""
    p = cf.preset.to_dict()
    sections = [
        _section("Data", _data_table(metrics)),
        _section("Preset and settings", _kv_table([(k, p[k]) for k in p if k != "description"])
                 + f"<p class='note'>{_e(p.get('description', ''))}</p>"),
        _section("Training", _training(metrics, loss_png)),
        _section("Evaluation on the validation rows", _evaluation(metrics)),
        _section("Learned biases", _biases(cf)),
        _section("Factor map", _factor_map(cf)),
        _section("Recommendations for three users", _recommendations(cf, metrics)),
        _section("Similar items", _similar(cf)),
    ]
    title = f"cflearn run: preset {p.get('name', '?')} on {Path(str(metrics.get('data', 'data'))).name}"
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body><header><h1>{_e(title)}</h1><p class='note'>written {stamp} by "
            f"cflearn {_e(metrics.get('cflearn_version', ''))}; {_headline(metrics)}</p></header>"
            + "".join(sections) + "</body></html>\n")


def _headline(m: dict[str, Any]) -> str:
    """The run's main number: validation RMSE, or NDCG@10 for ranking models and implicit data."""
    if m.get("rmse") is not None:
        return f"valid RMSE <b>{_num(m.get('rmse'))}</b> (global mean {_num(m.get('baseline_rmse_global_mean'))})"
    methods = (m.get("evaluation") or {}).get("methods") or {}
    best = {k: v.get("ndcg@10") for k, v in methods.items() if k in ("most popular", "EASE")}
    bars = ", ".join(f"{k} {_num(v)}" for k, v in best.items())
    return f"valid NDCG@10 <b>{_num(m.get('ndcg@10'))}</b>" + (f" ({bars})" if bars else "")


# -- sections -----------------------------------------------------------------------------------------------
def _data_table(m: dict[str, Any]) -> str:
    s = m.get("data_summary", {})
    implicit = m.get("implicit") is True
    what = "interactions" if implicit else "ratings"
    rows = [("source", m.get("data")), (what, s.get("ratings")), ("users", s.get("users")),
            ("items", s.get("items"))]
    if not implicit:
        rows += [("scale", "{} to {}".format(*s["scale"]) if "scale" in s else None),
                 ("mean rating", s.get("mean_rating"))]
    rows += [("density", f"{s['density']:.2%}" if isinstance(s.get("density"), float) else None),
             ("split", f"{m.get('split')} (seed {m.get('seed')}, {m.get('valid_pct')} held out)"),
             (f"train / valid {what}", f"{_num(m.get('n_train'))} / {_num(m.get('n_valid'))}"),
             ("duplicates merged", s.get("duplicates_merged"))]
    cold = s.get("cold_valid") or {}
    text = _kv_table(rows)
    if cold:
        how = ("their users are recommended the most popular items, their items are not ranked" if implicit else
               "they are predicted as the average user / item")
        text += (f"<p>Cold rows in validation: <b>{_e(cold.get('rows'))}</b> validation {what} have a user or item "
                 f"unseen in training ({_e(cold.get('users'))} users, {_e(cold.get('items'))} items); {how}.</p>")
    return text


def _training(m: dict[str, Any], loss_png: bytes | None) -> str:
    loss = m.get("loss") or ("MSE" if m.get("rmse") is not None else "")  # runs before 'loss' was recorded
    kept, heads = m.get("kept_epoch"), m.get("kept_heads") or {}
    which = (f"validation loss of the kept weights (epoch {kept})" if kept and kept != m.get("epochs_run") else
             "final validation loss")
    if len(set(heads.values())) > 1:
        which = (f"validation loss of the kept heads (rating head of epoch {heads.get('rating')}, ranking head of "
                 f"epoch {heads.get('ranking')})")
    facts = _kv_table([("epochs", m.get("epochs")), ("fit seconds", m.get("fit_seconds")),
                       ("device", m.get("device")), (f"{which}{f' ({loss})' if loss else ''}", m.get("valid_loss")),
                       ("validation RMSE", m.get("rmse")), ("validation MAE", m.get("mae"))])
    img = _img(loss_png, "training loss per batch and validation loss per epoch") if loss_png else \
        "<p class='note'>no loss.png in the run folder</p>"
    return facts + img


def _evaluation(m: dict[str, Any]) -> str:
    ev = m.get("evaluation") or {}
    methods: dict[str, dict[str, Any]] = ev.get("methods") or {}
    if not methods:
        return "<p class='note'>no evaluation in metrics.json</p>"
    cols = list(next(iter(methods.values())))
    best: dict[str, float] = {}
    for c in cols:
        ranked = {n: v for n, v in methods.items() if not ("@" in c and n == _CHANCE)}  # random lists win nothing
        values = [v[c] for v in ranked.values() if isinstance(v.get(c), (int, float)) and math.isfinite(v[c])]
        way = better(c)  # popularity: lower is less popularity bias, not "better": left unmarked
        if values and way is not None:
            best[c] = min(values) if way == "lower" else max(values)
    head = "<tr><th>method</th>" + "".join(f"<th>{_e(c)}</th>" for c in cols) + "</tr>"
    body = []
    for k, (name, row) in enumerate(methods.items()):
        cells = []
        for c in cols:
            v = row.get(c)
            mark = c in best and isinstance(v, (int, float)) and v == best[c] and not ("@" in c and name == _CHANCE)
            cells.append(f"<td class='{'best' if mark else ''}'>{_num(v)}{' ★' if mark else ''}</td>")
        body.append(f"<tr class='{'model' if k == 0 else ''}'><td>{_e(name)}</td>{''.join(cells)}</tr>")
    relevant = ("every validation interaction is relevant (implicit data: no ratings)" if ev.get("relevance") is None
                else f"a validation item is relevant when rated at least {_e(ev.get('relevance'))}")
    cold = ev.get("cold_relevant")
    if isinstance(cold, int) and cold > 0:
        relevant += (f"; {cold} relevant items have no training row, so no list can hold them: each counts as a "
                     "relevant item missed by every method")
    unseen = "had no interaction with" if ev.get("relevance") is None else "did not rate"
    return (f"<table id='evaluation' class='grid'>{head}{''.join(body)}</table><p class='note'>Top-{_e(ev.get('n'))} "
            f"lists over items the user {unseen} in training; {relevant}. EASE and item-kNN rank the items with "
            f"at least 3 training interactions. The model's row is highlighted; ★ marks the best value of each column "
            "(lowest RMSE/MAE, highest otherwise; popularity is left unmarked: lower means less popularity bias; the "
            "global mean's lists are random, so its coverage is left unmarked too).</p>")


def _biases(cf: CollabModel) -> str:
    from ..interpret import biases

    try:
        floor = _min_ratings(cf)
        table = biases(cf, 8, min_ratings=floor)
    except CflearnError as e:
        return f"<p class='note'>{_e(e)}</p>"
    extra = () if cf.implicit else ("mean_rating",)
    cols = [c for c in ("item", "title", "bias", "n_ratings", *extra) if c in table.columns]
    if cf.implicit:  # play counts and clicks are not ratings
        table = table.rename(columns={"n_ratings": "n_interactions"})
        cols = ["n_interactions" if c == "n_ratings" else c for c in cols]
    hi, lo = table[table["end"] == "highest"][cols], table[table["end"] == "lowest"][cols]
    why = ("A ranking model's item bias is how readily an item is recommended to anyone: mostly popularity among "
           "the users it learned from." if cf.contract.score_kind == "ranking" else
           "A high bias with an ordinary mean rating is an item liked beyond its average once the raters' leniency is "
           "accounted for.")
    rows = "interactions" if cf.implicit else "ratings"
    return (f"<p>Items with at least {floor} training {rows}. {why}</p><div class='pair'>"
            f"<div><h3>highest</h3>{_frame(hi)}</div><div><h3>lowest</h3>{_frame(lo)}</div></div>")


def _factor_map(cf: CollabModel) -> str:
    from ..interpret import factor_map

    try:
        fig = factor_map(cf, 60, labels=25)
    except CflearnError as e:
        return f"<p class='note'>{_e(e)}</p>"
    buf = BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return _img(buf.getvalue(), "the most-rated items by the first two principal components of their factors")


def _recommendations(cf: CollabModel, m: dict[str, Any]) -> str:
    users = (m.get("samples") or {}).get("users") or []
    if not users:
        return "<p class='note'>no sample users in metrics.json</p>"
    spec = cf.contract
    blocks = ["<p>The lists come from the model's ranking head (its score orders them); <b>rating</b> is its "
              "rating head's predicted rating of the same item.</p>" if spec.list_kind != spec.score_kind else ""]
    for s in users:
        try:
            top = recommend(cf, s["user"], n=5)
        except CflearnError as e:
            blocks.append(f"<p class='note'>user {_e(s['user'])}: {_e(e)}</p>")
            continue
        weight = str(cf.columns.get("rating") or "weight")  # on interactions: the weight column (plays, clicks)
        own = _titled(cf, pd.DataFrame(s["top_rated"], columns=["item", weight if cf.implicit else "rating"]))
        rec = _titled(cf, top[[c for c in ("item", "score", "rating") if c in top.columns]])
        count, theirs = (("interactions", f"their heaviest, by {weight}") if cf.implicit else
                         ("ratings", "their top-rated"))
        blocks.append(f"<h3>user {_e(s['user'])} ({_num(s.get('n_ratings'))} {count})</h3><div class='pair'>"
                      f"<div><h4>{_e(theirs)}</h4>{_frame(own)}</div><div><h4>recommended</h4>{_frame(rec)}</div>"
                      "</div>")
    return "".join(blocks)


def _similar(cf: CollabModel) -> str:
    if cf.item_counts is None:
        return "<p class='note'>this model was saved without rating counts</p>"
    popular = cf.items.decode(cf.item_counts.argsort(descending=True)[:3].numpy())
    blocks = []
    for item in popular:
        try:
            sim = similar_items(cf, item, n=5, min_ratings=_min_ratings(cf))
        except CflearnError as e:
            return f"<p class='note'>{_e(e)}</p>"
        name = _titled(cf, pd.DataFrame({"item": [item]}))
        label = name["title"].iloc[0] if "title" in name.columns else item
        blocks.append(f"<div><h4>like {_e(label)}</h4>{_frame(_titled(cf, sim[['item', 'similarity']]))}</div>")
    return "<p>Cosine similarity of the item vectors the model scores with.</p><div class='triple'>" + \
        "".join(blocks) + "</div>"


# -- helpers ------------------------------------------------------------------------------------------------
def _min_ratings(cf: CollabModel) -> int:
    """Hide the noise of items rated once or twice: at least 10 ratings on sizable data."""
    if cf.item_counts is None:
        return 1
    return 10 if int((cf.item_counts >= 10).sum()) >= 20 else 1


def _titled(cf: CollabModel, frame: pd.DataFrame) -> pd.DataFrame:
    titles = item_titles(cf.item_info)
    if titles is None or "title" in frame.columns:
        return frame
    out = frame.copy()
    out.insert(1, "title", titles.reindex(out["item"].to_numpy()).to_numpy())
    return out


def _frame(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{_num(v, 4) if isinstance(v, float) else _e(v)}</td>" for v in r) +
                   "</tr>" for r in frame.itertuples(index=False))
    return f"<table class='grid'><tr>{head}</tr>{rows}</table>"


def _kv_table(rows: list[tuple[str, Any]]) -> str:
    body = "".join(f"<tr><th>{_e(k)}</th><td>{_num(v, 4)}</td></tr>" for k, v in rows if v is not None)
    return f"<table class='kv'>{body}</table>"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{_e(title)}</h2>{body}</section>"


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"


def _e(value: Any) -> str:
    """Any value as escaped HTML text (quotes too: safe inside attributes)."""
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    return html.escape("" if value is None else str(value), quote=True)


def _num(v: Any, digits: int | None = None) -> str:
    """Numbers for people: thousands separators, 4 decimals (or ``digits`` significant ones); text escaped."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return _e(v if v is not None else "-")
    if isinstance(v, float) and not math.isfinite(v):
        return "-"
    if isinstance(v, int) or (digits and v.is_integer() and abs(v) < 2**53):
        return f"{int(v):,}"  # play counts and other whole numbers as they are: 19,830, never 1.983e+04
    if digits and abs(v) >= 10**digits:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}" if digits else f"{v:.4f}"


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2330;margin:0 auto;max-width:1100px;
padding:0 24px 48px;background:#fff}
header{border-bottom:2px solid #4C72B0;margin-bottom:8px}h1{font-size:24px;margin:24px 0 4px}
h2{font-size:19px;margin:28px 0 8px;color:#2c3e66}h3{font-size:15px;margin:14px 0 6px}
h4{font-size:14px;margin:8px 0 4px}
.note{color:#5b6475;font-size:13px}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{padding:4px 9px;text-align:left;border-bottom:1px solid #e3e6ec;vertical-align:top}
table.kv th{color:#5b6475;font-weight:600;white-space:nowrap}
table.grid tr:first-child th{background:#f3f5f9}
tr.model td{background:#fff6d6;font-weight:600}td.best{color:#0b6b2b;font-weight:700}
img{max-width:100%;height:auto;border:1px solid #e3e6ec;margin:6px 0}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.triple{display:grid;grid-template-columns:1fr 1fr 1fr;gap:14px}
@media (max-width:800px){.pair,.triple{grid-template-columns:1fr}}
"""
