"""Tables and plots of `bench/eta_evaluate.py`: Markdown for the terminal and docs/eta.md, PNGs.

Everything here reads the scored samples; nothing is recomputed from traces. Scored days are the
days after each trace's first (warm-up) day; the warm-up day has its own table.
"""
from __future__ import annotations

import platform
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from eta_evaluate import OURS, PREDICTORS, Judged

from hub.domain.eta import metrics
from hub.domain.eta.metrics import BANDS, LEAVE_MARGIN, Sample, by_ticket, leave_home, scores

TRAVEL = (20.0, 40.0)
MARGINS = (0.0, 5.0, 10.0, 15.0)
BEGIN, END = "<!-- eta-eval:begin -->", "<!-- eta-eval:end -->"
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
BASELINES = PREDICTORS[1:]


def _f(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _band_name(i: int) -> str:
    lo, hi = BANDS[i]
    return f"{lo}+" if hi == float("inf") else f"{lo}–{hi}"


def _late(lh: metrics.LeaveHome | None) -> str:
    if lh is None:
        return "–"
    return f"{_pct(lh.late)} · {_f(lh.idle_mean, 0)} / {_f(lh.idle_median, 0)} min"


class Report:
    def __init__(self, judged: list[Judged], *, days: int, seconds: float, simulating: float, jobs: int,
                 made_of: str = ""):
        self.judged, self.days, self.seconds, self.simulating, self.jobs = judged, days, seconds, simulating, jobs
        self.made_of = made_of
        self.scenarios: dict[str, list[Sample]] = {}
        self.warmup: list[Sample] = []
        for j in judged:
            self.scenarios.setdefault(j.trace.scenario, []).extend(s for s in j.samples if s.day > 0)
            self.warmup.extend(s for s in j.samples if s.day == 0)
        self.everything = [s for ss in self.scenarios.values() for s in ss]
        self.groups = {**self.scenarios, "**all**": self.everything}

    # -- tables --------------------------------------------------------------------------------

    def accuracy(self, groups: dict[str, list[Sample]]) -> str:
        rows = []
        for name, samples in groups.items():
            got = {p: scores(samples, p) for p in PREDICTORS}
            if got[OURS] is None:
                continue
            day = {p: scores([s for s in samples if s.service_hours], p) for p in PREDICTORS}
            best = min(got[p].mae for p in BASELINES)
            best_day = min(day[p].mae for p in BASELINES) if day[OURS] else None
            for p in PREDICTORS:
                s = got[p]
                rows.append([name, p, str(s.n), _f(s.mae), _f(s.p90_abs), _f(s.bias), _f(s.coverage, 3),
                             _f(s.pinball), _f(s.mae / best, 2) if best > 0 else "–",
                             _f(day[p].mae / best_day, 2) if best_day else "–"])
            rows.append([name, "(never called)", str(got[OURS].never_called)] + [""] * 7)
        return _table(["scenario", "predictor", "points", "MAE", "p90 abs err", "bias", "p10–p90 cov",
                       "pinball", "MAE ÷ best baseline", "same, service hours only"], rows)

    def targets(self) -> str:
        """DESIGN §6: MAE ≤ 0.6× the best classical predictor's, p10–p90 coverage 0.75–0.85, late
        rate for a 20-minute trip ≤ 5% (online numbers), with the idle wait beside it."""
        rows = []
        for name, samples in self.groups.items():
            got = {p: scores(samples, p) for p in PREDICTORS}
            if got[OURS] is None:
                continue
            ratio = got[OURS].mae / min(got[p].mae for p in BASELINES)
            cov = got[OURS].coverage
            lh = leave_home(by_ticket(s for s in samples if s.online), OURS, 20.0)
            rows.append([name, f"{ratio:.2f} {'✓' if ratio <= 0.6 else '✗'}",
                         f"{cov:.3f} {'✓' if 0.75 <= cov <= 0.85 else '✗'}",
                         f"{_pct(lh.late)} {'✓' if lh.late <= 0.05 else '✗'}" if lh else "–",
                         f"{_f(lh.idle_mean, 0)} / {_f(lh.idle_median, 0)} min" if lh else "–"])
        return _table(["scenario", "MAE ÷ best baseline (≤ 0.6)", "p10–p90 coverage (0.75–0.85)",
                       "late, T=20, online (≤ 5%)", "idle mean / median"], rows)

    def leave(self, online_only: bool, margin: float = LEAVE_MARGIN) -> str:
        rows = []
        for name, samples in self.groups.items():
            tickets = by_ticket(s for s in samples if s.online or not online_only)
            for p in PREDICTORS:
                got = [leave_home(tickets, p, T, margin, exclude_under=T + LEAVE_MARGIN) for T in TRAVEL]
                n = "/".join(str(g.n) if g else "0" for g in got)
                rows.append([name, p, n, *(_late(g) for g in got)])
        return _table(["scenario", "predictor", "numbers (T=20/40)",
                       "T=20: late · idle mean / median", "T=40: late · idle mean / median"], rows)

    def sweep(self) -> str:
        tickets = by_ticket(s for s in self.everything if s.online)
        rows = []
        for T in TRAVEL:
            for p in PREDICTORS:
                rows.append([f"{T:.0f}", p] + [_late(leave_home(tickets, p, T, m, exclude_under=T + LEAVE_MARGIN))
                                               for m in MARGINS])
        return _table(["T", "predictor"] + [f"margin {m:.0f}" for m in MARGINS], rows)

    def phases(self) -> str:
        rows = []
        for name, samples in self.groups.items():
            for label, flag in (("service hours", True), ("before opening", False)):
                part = [s for s in samples if s.service_hours == flag]
                got = {p: scores(part, p) for p in PREDICTORS}
                if got[OURS] is None:
                    continue
                best = min(BASELINES, key=lambda p: got[p].mae)
                rows.append([name, label, str(got[OURS].n), _f(got[OURS].mae), f"{_f(got[best].mae)} ({best})",
                             _f(got[OURS].bias), _f(got[OURS].coverage, 3),
                             " / ".join(_f(got[p].bias) for p in BASELINES)])
        return _table(["scenario", "phase", "points", "MAE ours", "MAE best baseline", "bias ours", "cov ours",
                       "bias " + " / ".join(BASELINES)], rows)

    def leave_by_phase(self) -> str:
        rows = []
        for label, flag in (("during service hours", True), ("before opening", False)):
            tickets = {k: v for k, v in by_ticket(s for s in self.everything if s.online).items()
                       if v[0].service_hours == flag}
            for p in PREDICTORS:
                got = [leave_home(tickets, p, T) for T in TRAVEL]
                rows.append([label, p, "/".join(str(g.n) if g else "0" for g in got), *(_late(g) for g in got)])
        return _table(["online number taken", "predictor", "numbers (T=20/40)", "T=20: late · idle",
                       "T=40: late · idle"], rows)

    def bands(self) -> str:
        rows = []
        for p in PREDICTORS:
            got = scores(self.everything, p)
            rows.append([p] + [f"{_f(m)} ({n})" for n, m in got.mae_by_band])
        for label, pick in (("ours: bias", lambda s: s.bias), ("ours: p10–p90 cov", lambda s: s.coverage)):
            row = [label]
            for i in range(len(BANDS)):
                got = scores([s for s in self.everything if s.called is not None and metrics.band_of(s.y) == i], OURS)
                row.append(_f(pick(got), 3 if "cov" in label else 1) if got else "–")
            rows.append(row)
        return _table(["MAE (points) by actual wait"] + [_band_name(i) + " min" for i in range(len(BANDS))], rows)

    def hours(self) -> str:
        by_hour: dict[int, list[Sample]] = {}
        for s in self.everything:
            by_hour.setdefault(datetime.fromtimestamp(s.t * 60, ZONE).hour, []).append(s)
        rows = []
        for h in sorted(by_hour):
            got = {p: scores(by_hour[h], p) for p in PREDICTORS}
            if got[OURS] is None:
                continue
            rows.append([f"{h:02d}:00", str(got[OURS].n), _f(got[OURS].mae), _f(got[OURS].bias),
                         _f(got[OURS].coverage, 3)] + [_f(got[p].mae) for p in BASELINES])
        return _table(["hour of prediction", "points", "MAE ours", "bias ours", "cov ours"]
                      + [f"MAE {p}" for p in BASELINES], rows)

    def speed(self) -> str:
        rows = []
        for j in self.judged:
            rows.append([j.trace.scenario, j.trace.branch, str(j.trace.seed), str(j.events), str(j.forecasts),
                         str(j.predictions), _f(j.cpu_estimator), _f(1000 * j.cpu_publish / max(j.forecasts, 1), 2),
                         f"{j.predictions / max(j.cpu_estimator, 1e-9):.0f}", _f(j.cpu_baselines)])
        return _table(["scenario", "branch", "seed", "events", "forecasts", "predictions", "estimator CPU s",
                       "ms / forecast", "predictions / s", "baselines CPU s"], rows)

    def markdown(self) -> str:
        seeds = sorted({j.trace.seed for j in self.judged if j.trace.seed is not None})
        branches = sorted({j.trace.branch for j in self.judged}, key=str)
        head = (f"{len(self.judged)} traces (branches {', '.join(branches)}; seeds {', '.join(map(str, seeds)) or '–'}) "
                f"of {self.days} working days, the first of each warm-up; {len(self.everything)} scored points. "
                f"{self.seconds:.0f} s wall with {self.jobs} processes ({self.simulating:.0f} s simulating), "
                f"Python {platform.python_version()}; {self.made_of}.")
        parts = [
            head,
            "### Targets", self.targets(),
            "### Accuracy (scored days, every prediction point)", self.accuracy(self.groups),
            f"### Leave home: online numbers (margin {LEAVE_MARGIN:.0f} min)", self.leave(online_only=True),
            f"### Leave home: all numbers (margin {LEAVE_MARGIN:.0f} min)", self.leave(online_only=False),
            "### Leave home by margin (online numbers, all scenarios)", self.sweep(),
            "### Service hours against before opening", self.phases(),
            "### Leave home by when the online number was taken (all scenarios)", self.leave_by_phase(),
            "### By actual wait (all scenarios)", self.bands(),
            "### By hour of the prediction (all scenarios)", self.hours(),
            "### Warm-up day (first day of each trace)", self.accuracy({"warm-up": self.warmup}),
            "### Replay speed (CPU seconds of one core per trace)", self.speed(),
        ]
        return "\n\n".join(parts) + "\n"

    # -- docs ----------------------------------------------------------------------------------

    def write_docs(self, docs: Path) -> None:
        doc = docs / "eta.md"
        text = doc.read_text(encoding="utf-8") if doc.exists() else f"# ETA evaluation\n\n{BEGIN}\n{END}\n"
        if BEGIN not in text or END not in text:
            text += f"\n{BEGIN}\n{END}\n"
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        results = self.markdown().replace("### ", "#### ")
        doc.write_text(f"{before}{BEGIN}\n{results}\n{END}{after}", encoding="utf-8")
        self.plots(docs)

    def plots(self, docs: Path) -> None:
        try:
            import matplotlib
        except ImportError:
            print("eta_evaluate: matplotlib missing (pip install -e '.[eval]'); no plots drawn")
            return
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4.2))
        width = 0.8 / len(PREDICTORS)
        for k, p in enumerate(PREDICTORS):
            got = scores(self.everything, p)
            xs = [i + (k - (len(PREDICTORS) - 1) / 2) * width for i in range(len(BANDS))]
            ax.bar(xs, [m or 0 for _, m in got.mae_by_band], width, label=p)
        ax.set_xticks(range(len(BANDS)), [_band_name(i) for i in range(len(BANDS))])
        ax.set_xlabel("actual wait from the prediction to the first call (min)")
        ax.set_ylabel("MAE of p50 (min)")
        ax.set_title("ETA error by horizon, all scenarios, scored days")
        ax.legend()
        fig.tight_layout()
        fig.savefig(docs / "eta-mae-by-band.png", dpi=110)
        plt.close(fig)

        tickets = by_ticket(s for s in self.everything if s.online)
        fig, axes = plt.subplots(1, len(TRAVEL), figsize=(10, 4.2))
        for ax, T in zip(axes, TRAVEL):
            for p in PREDICTORS:
                got = [leave_home(tickets, p, T, m, exclude_under=T + LEAVE_MARGIN) for m in MARGINS]
                if None in got:
                    continue
                xs = [g.idle_mean or 0 for g in got]
                ys = [100 * g.late for g in got]
                ax.plot(xs, ys, marker="o", label=p)
                for x, y, m in zip(xs, ys, MARGINS):
                    ax.annotate(f"{m:.0f}", (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
            ax.axhline(5, color="grey", lw=0.8, ls="--")
            ax.set_title(f"travel {T:.0f} min (labels: margin, min)")
            ax.set_xlabel("mean idle wait at the branch (min)")
            ax.set_ylabel("late (% of online numbers)")
            ax.legend()
        fig.tight_layout()
        fig.savefig(docs / "eta-leave-home.png", dpi=110)
        plt.close(fig)
