"""`queuecast eta score TRACE PREDICTIONS`: recorded predictions (a real day's, from `export-trace
--predictions`) scored against what happened in the trace, beside NAIVE, QL and LES asked at the
same points. Through the real command in a subprocess, on hand-written traces whose answers are
known, and on a simulated day replayed by `queuecast eta replay`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from waiting import deadline

B = "12"
TIMEOUT = deadline(120)          # a hang guard on each command run, scaled


def queuecast(tmp: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECAST_")}
    env["QUEUECAST_DATABASE"] = f"sqlite:///{tmp}/score.db"
    return subprocess.run([sys.executable, "-m", "hub", *args], env=env, cwd=tmp, input=stdin,
                          capture_output=True, timeout=TIMEOUT)


def _ev(t: str, type_: str, **kw) -> dict:
    return {"t": f"2026-05-18T{t}+07:00", "type": type_, "branch": B, **kw}


# One counter, two numbers: A is called 2 minutes after issue, B (online) 12 minutes after.
SMALL = [
    _ev("08:00:00", "counter.opened", counter="1", services=["dat-dai"]),
    _ev("08:01:00", "ticket.issued", ticket="A", service="dat-dai", channel="kiosk"),
    _ev("08:01:00", "ticket.issued", ticket="B", service="dat-dai", channel="online"),
    _ev("08:03:00", "ticket.called", ticket="A", counter="1"),
    _ev("08:13:00", "ticket.completed", ticket="A", counter="1"),
    _ev("08:13:00", "ticket.called", ticket="B", counter="1"),
    _ev("08:20:00", "ticket.completed", ticket="B", counter="1"),
]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def first_calls(trace: list[dict]) -> dict[str, datetime]:
    out: dict[str, datetime] = {}
    for e in trace:
        if e["type"] == "ticket.called":
            out.setdefault(e["ticket"], datetime.fromisoformat(e["t"]))
    return out


def schedule(tmp: Path, trace: Path) -> list[dict]:
    """The points the contract's schedule has for this trace, as `eta replay` emits them."""
    p = queuecast(tmp, "eta", "replay", str(trace))
    assert p.returncode == 0, p.stderr
    return [json.loads(x) for x in p.stdout.decode().splitlines()]


def truthful(points: list[dict], calls: dict[str, datetime], shift: float = 0.0, spread: float = 0.0) -> list[dict]:
    """Predictions that knew the answer, moved by `shift` minutes, `spread` either side."""
    out = []
    for pt in points:
        y = (calls[pt["ticket"]] - datetime.fromisoformat(pt["t"])).total_seconds() / 60
        mid = y + shift
        out.append({"t": pt["t"], "ticket": pt["ticket"], "p10": mid - spread, "p50": mid, "p90": mid + spread})
    return out


def score(tmp: Path, trace: Path, predictions: Path) -> dict:
    p = queuecast(tmp, "eta", "score", str(trace), str(predictions), "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture
def small(tmp_path) -> tuple[Path, list[dict]]:
    trace = write(tmp_path / "small.jsonl", SMALL)
    return trace, schedule(tmp_path, trace)


def test_predictions_that_knew_the_answer_score_zero_error_and_full_coverage(tmp_path, small):
    trace, points = small
    assert len(points) >= 3                      # A and B at issue, B at the boundaries before its call
    preds = write(tmp_path / "p.jsonl", truthful(points, first_calls(SMALL), spread=1.0))
    f = score(tmp_path, trace, preds)
    assert (f["schedule_points"], f["scored"], f["unpredicted"], f["stray"]) == (len(points), len(points), 0, 0)
    ours = f["predictors"]["published"]
    assert (ours["points"], ours["mae"], ours["bias"], ours["coverage"]) == (len(points), 0.0, 0.0, 1.0)
    assert set(f["predictors"]) == {"published", "NAIVE", "QL", "LES"}
    [day] = f["days"]
    assert (day["day"], day["points"], day["mae"], day["coverage"]) == ("2026-05-18", len(points), 0.0, 1.0)
    assert all(r["points"] == len(points) for r in f["predictors"].values())


def test_predictions_ten_minutes_late_score_ten_minutes_of_error(tmp_path, small):
    trace, points = small
    preds = write(tmp_path / "p.jsonl", truthful(points, first_calls(SMALL), shift=10.0, spread=5.0))
    ours = score(tmp_path, trace, preds)["predictors"]["published"]
    assert (ours["mae"], ours["bias"], ours["coverage"]) == (10.0, 10.0, 0.0)


def test_missing_and_stray_predictions_are_counted_not_scored(tmp_path, small):
    trace, points = small
    rows = truthful(points, first_calls(SMALL))
    kept = rows[1:]                               # the hub was not yet publishing at the first point
    stray = {"t": "2026-05-18T08:02:00+07:00", "ticket": "A", "p10": 1, "p50": 1, "p90": 1}   # no point then
    f = score(tmp_path, trace, write(tmp_path / "p.jsonl", [*kept, stray]))
    assert (f["schedule_points"], f["scored"], f["unpredicted"], f["stray"]) == (len(points), len(points) - 1, 1, 1)
    assert f["predictors"]["NAIVE"]["points"] == len(points) - 1      # the baselines at the same points only


def test_files_that_do_not_belong_together_are_not_scored_quietly(tmp_path, small):
    trace, points = small
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    p = queuecast(tmp_path, "eta", "score", str(trace), str(empty))
    assert p.returncode == 2 and p.stdout == b"" and b"no predictions to score" in p.stderr
    elsewhere = write(tmp_path / "b9.jsonl", [{**r, "ticket": f"other-{r['ticket']}"}
                                            for r in truthful(points, first_calls(SMALL))])
    p = queuecast(tmp_path, "eta", "score", str(trace), str(elsewhere))
    assert p.returncode == 2 and p.stdout == b"" and b"same branch and days" in p.stderr
    mostly = write(tmp_path / "mostly.jsonl", [*truthful(points[:1], first_calls(SMALL)),
                                               *(json.loads(x.read_text().splitlines()[0]) | {"ticket": f"x{i}"}
                                                 for i, x in enumerate([elsewhere] * 5))])
    p = queuecast(tmp_path, "eta", "score", str(trace), str(mostly), "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["stray"] == 5
    assert p.stderr.decode().startswith("queuecast: warning: 5 of 6 predictions are at no point")


def test_the_tables_name_every_predictor(tmp_path, small):
    trace, points = small
    preds = write(tmp_path / "p.jsonl", truthful(points, first_calls(SMALL)))
    p = queuecast(tmp_path, "eta", "score", str(trace), str(preds))
    assert p.returncode == 0, p.stderr
    out = p.stdout.decode()
    rows = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows == ["predictor", "published", "NAIVE", "QL", "LES"]
    assert f"{len(points)} points scored of {len(points)}" in out


@pytest.mark.slow
def test_replayed_simulated_days_beat_the_baselines_day_by_day(tmp_path):
    """The use the command is for, on days whose predictions the live estimator made: every
    point is matched, and the figures are those of docs/eta.md's kind, overall and per day."""
    trace = tmp_path / "day.jsonl"
    p = queuecast(tmp_path, "simulate", "--branch", B, "--days", "2", "--scenario", "normal", "--seed", "11",
                  "-o", str(trace))
    assert p.returncode == 0, p.stderr
    replayed = queuecast(tmp_path, "eta", "replay", str(trace))
    assert replayed.returncode == 0, replayed.stderr
    preds = tmp_path / "day.predictions.jsonl"
    preds.write_bytes(replayed.stdout)
    f = score(tmp_path, trace, preds)
    lines = len(replayed.stdout.splitlines())
    assert f["schedule_points"] == lines and f["unpredicted"] == 0 and f["stray"] == 0
    assert f["scored"] + f["never_called"] == lines
    ours = f["predictors"]["published"]
    assert ours["mae_vs_best_baseline"] < 1.0, f["predictors"]
    assert 0.0 < ours["coverage"] <= 1.0
    days = f["days"]
    assert [d["day"] for d in days] == sorted({d["day"] for d in days}) and len(days) == 2
    assert sum(d["points"] for d in days) == f["scored"]
    assert days[1]["mae_vs_best_baseline"] < 1.0, days           # a day with a past to learn from


BAD = {
    "not JSON": ("{nope", "line 2: not JSON"),
    "a list": ("[1, 2]", "line 2: expected a JSON object"),
    "no p90": ('{"t": "2026-05-18T08:05:00+07:00", "ticket": "B", "p10": 1, "p50": 2}', "line 2: missing p90"),
    "no offset": ('{"t": "2026-05-18T08:05:00", "ticket": "B", "p10": 1, "p50": 2, "p90": 3}', "line 2: field 't' has no UTC offset"),
    "unordered": ('{"t": "2026-05-18T08:05:00+07:00", "ticket": "B", "p10": 3, "p50": 2, "p90": 4}',
                  "line 2: expected p10 ≤ p50 ≤ p90"),
    "negative": ('{"t": "2026-05-18T08:05:00+07:00", "ticket": "B", "p10": -1, "p50": 2, "p90": 4}',
                 "line 2: p10, p50, p90"),
    "a string": ('{"t": "2026-05-18T08:05:00+07:00", "ticket": "B", "p10": "1", "p50": 2, "p90": 4}',
                 "line 2: p10, p50, p90"),
    "twice": ('{"t": "2026-05-18T08:01:00+07:00", "ticket": "A", "p10": 1, "p50": 2, "p90": 4}',
              "line 2: a second prediction for A"),
}


@pytest.mark.parametrize("how", BAD)
def test_a_bad_prediction_line_exits_2_naming_file_and_line(tmp_path, how):
    trace = write(tmp_path / "small.jsonl", SMALL)
    good = '{"t": "2026-05-18T08:01:00+07:00", "ticket": "A", "p10": 1, "p50": 2, "p90": 3}'
    bad, message = BAD[how]
    preds = tmp_path / "p.jsonl"
    preds.write_text(f"{good}\n{bad}\n", encoding="utf-8")
    p = queuecast(tmp_path, "eta", "score", str(trace), str(preds))
    err = p.stderr.decode()
    assert p.returncode == 2 and p.stdout == b"", err
    assert err.startswith(f"queuecast: {preds}: {message}") and err.count("\n") == 1, err


def test_a_bad_trace_line_is_named_too(tmp_path):
    trace = tmp_path / "t.jsonl"
    trace.write_text(json.dumps(SMALL[0]) + "\n{broken\n", encoding="utf-8")
    preds = write(tmp_path / "p.jsonl", [])
    p = queuecast(tmp_path, "eta", "score", str(trace), str(preds))
    assert p.returncode == 2 and p.stdout == b""
    assert p.stderr.decode().startswith(f"queuecast: {trace}: line 2: not JSON")


def test_only_one_file_can_come_from_stdin(tmp_path):
    p = queuecast(tmp_path, "eta", "score", "-", "-", stdin=b"")
    assert p.returncode == 2 and b"stdin" in p.stderr


def test_predictions_can_come_from_stdin(tmp_path, small):
    trace, points = small
    body = "".join(json.dumps(r) + "\n" for r in truthful(points, first_calls(SMALL))).encode()
    p = queuecast(tmp_path, "eta", "score", str(trace), "-", "--json", stdin=body)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["predictors"]["published"]["mae"] == 0.0
