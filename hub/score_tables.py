"""`queuecast eta score` without --json: the figures of hub.domain.eta.scoring.summary as Markdown tables."""
from __future__ import annotations

from typing import Any


def _num(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _leave(lh: dict[str, Any] | None) -> str:
    if lh is None:
        return "–"
    return f"{lh['late']:.1%} of {lh['numbers']} · {_num(lh['idle_mean'], 0)} / {_num(lh['idle_median'], 0)} min"


def score_tables(f: dict[str, Any]) -> str:
    lines = [f"{f['scored']} points scored of {f['schedule_points']} on the schedule "
             f"({f['unpredicted']} with no recorded prediction, {f['never_called']} of numbers never called; "
             f"{f['stray']} recorded predictions at no point of the trace)", "",
             "| predictor | points | MAE min | p90 abs err | bias | p10–p90 cov | online late, 20 min · idle mean / median "
             "| online late, 40 min · idle mean / median |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in f["predictors"].items():
        lines.append(f"| {name} | {r['points']} | {_num(r.get('mae'))} | {_num(r.get('p90_abs_error'))} | "
                     f"{_num(r.get('bias'))} | {_num(r.get('coverage'), 3)} | {_leave(r['leave_20'])} | "
                     f"{_leave(r['leave_40'])} |")
    ratio = f["predictors"].get("published", {}).get("mae_vs_best_baseline")
    if ratio is not None:
        lines += ["", f"MAE of the published predictions ÷ the best baseline's: {ratio:.2f}"]
    if len(f["days"]) > 1:
        lines += ["", "| service day | points | MAE min | p10–p90 cov | best baseline MAE | ÷ best baseline |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {d['day']} | {d['points']} | {_num(d['mae'])} | {_num(d['coverage'], 3)} | "
                  f"{_num(d['best_baseline_mae'])} | {_num(d['mae_vs_best_baseline'], 2)} |" for d in f["days"]]
    return "\n".join(lines) + "\n"
