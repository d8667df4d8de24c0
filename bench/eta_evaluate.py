"""The ETA estimator against the classical predictors (NAIVE, QL, LES) on held-out simulated days.

A benchmark script, not a test (docs/eta.md has the method, the figures and how to read them):

1. simulates, for every scenario `queuecast simulate --help` lists, `--days` working days of each
   of `--branches`, with seeds from `--seed-base` on (1000+: never used while developing);
2. replays each trace once through `hub.domain.eta.replay.points`, and at every prediction point
   asks the live estimator and the three baselines (`hub.domain.eta.baselines`) about the same
   waiting numbers, from the same `Observed` state; one trace per process, traces in parallel;
3. scores every point against the number's real first call (`hub.domain.eta.metrics`): the first
   day of a trace is warm-up (the estimator learns from earlier days) and is reported apart;
4. prints Markdown tables and the replay speed (CPU of one core), rewrites the results section of
   docs/eta.md and draws docs/eta-*.png (with matplotlib, from the `eval` extra).

Usage: .venv/bin/python bench/eta_evaluate.py [--days 3] [--branches 1,9] [--seeds 1] [--jobs N]
       .venv/bin/python bench/eta_evaluate.py --traces a.jsonl b.jsonl   # score given traces
`make eta-eval` installs the extra and runs the default, which takes a few minutes on two cores.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hub.config import load_config  # noqa: E402
from hub.domain.eta import baselines  # noqa: E402
from hub.domain.eta.estimator import Estimator, Quantiles  # noqa: E402
from hub.domain.eta.metrics import Sample  # noqa: E402
from hub.domain.eta.plans import Setting  # noqa: E402
from hub.domain.eta.replay import points  # noqa: E402  (first: the eta package imports the rest)
from hub.domain.eta.scoring import Sampler, baseline_triples  # noqa: E402
from hub.domain.trace import parse  # noqa: E402

OURS = "ours"
PREDICTORS = (OURS, *baselines.PREDICTORS)
SEED_BASE = 1000            # evaluation seeds; development used seeds below 100
MISSING = Quantiles(0.0, 0.0, 0.0)      # what the replay publishes for a number called as it was issued


@dataclass
class Trace:
    scenario: str
    branch: str
    seed: int | None
    path: str


@dataclass
class Judged:
    trace: Trace
    samples: list[Sample]
    events: int = 0
    forecasts: int = 0          # `publish` calls: one forecast of every number due at a point
    predictions: int = 0        # (point, number) pairs
    cpu_estimator: float = 0.0  # seconds: folding the events and forecasting
    cpu_publish: float = 0.0    # ... of which forecasting
    cpu_baselines: float = 0.0
    notes: list[str] = field(default_factory=list)


def listed_scenarios() -> list[str]:
    """The scenario names `queuecast simulate --help` offers."""
    out = subprocess.run([sys.executable, "-m", "hub", "simulate", "--help"], capture_output=True,
                         text=True, cwd=ROOT, timeout=60)
    if out.returncode != 0:
        raise SystemExit(f"eta_evaluate: `queuecast simulate --help` failed: {out.stderr.strip()[-300:]}")
    # argparse shows either choices ("--scenario {a,b}") or the help line ("a, b, c (default a)")
    m = (re.search(r"--scenario\s+\{([^}]*)\}", out.stdout)
         or re.search(r"--scenario\s+[A-Z_]+\s+(.*?)\s*\(default", out.stdout, re.S))
    names = re.findall(r"[a-z][a-z0-9_-]*", m.group(1)) if m else []
    if not names:
        raise SystemExit("eta_evaluate: no scenario names in `queuecast simulate --help`; pass --scenarios")
    return names


def provenance() -> str:
    """Which code the figures are of: the commit, and a digest of the estimator's and the
    simulator's working-tree sources (they change between commits while being tuned)."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("hub/domain/eta/*.py"), *ROOT.glob("hub/sim/*.py")]):
        digest.update(path.name.encode() + path.read_bytes())
    return f"commit {head or '?'}, sources of hub/domain/eta and hub/sim {digest.hexdigest()[:12]}"


def simulate(scenario: str, branch: str, days: int, seed: int, directory: str) -> Trace:
    path = os.path.join(directory, f"{scenario}-b{branch}-s{seed}.jsonl")
    cmd = [sys.executable, "-m", "hub", "simulate", "--scenario", scenario, "--branch", branch,
           "--days", str(days), "--seed", str(seed), "-o", path]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"eta_evaluate: {' '.join(cmd[2:])} failed: {out.stderr.strip()[-300:]}")
    return Trace(scenario, branch, seed, path)


def named(path: str) -> Trace:
    """A given trace file; one named like this script's own (`normal-b1-s1000.jsonl`) keeps its
    scenario, branch and seed, any other is a scenario of its own."""
    stem = Path(path).stem
    m = re.fullmatch(r"(.+)-b([^-]+)-s(\d+)", stem)
    return Trace(m[1], m[2], int(m[3]), path) if m else Trace(stem, "?", None, path)


def judge(trace: Trace) -> Judged:
    """Replay one trace once, asking every predictor at every point (runs in a worker process)."""
    config = load_config()
    events = list(parse(open(trace.path, encoding="utf-8")))
    judged = Judged(trace, [], events=len(events))
    sampler = Sampler(events, name=Path(trace.path).stem)
    start = time.process_time()
    for t, est, tickets in points(events, lambda b: Estimator(b, Setting.of(config.branches.get(b)))):
        a = time.process_time()
        ours = est.publish(t, tickets)
        b = time.process_time()
        theirs = baseline_triples(est, t, tickets)
        c = time.process_time()
        mine = {tid: tuple(ours.get(tid, MISSING).as_dict().values()) for tid in tickets}
        judged.samples.extend(sampler.at(t, est, tickets, {OURS: mine, **theirs}))
        judged.forecasts += 1
        judged.predictions += len(tickets)
        judged.cpu_publish += b - a
        judged.cpu_baselines += c - b
        start += time.process_time() - c            # bookkeeping is nobody's cost
    judged.cpu_estimator = time.process_time() - start - judged.cpu_baselines
    return judged


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=3, help="working days per trace; the first is warm-up")
    ap.add_argument("--branches", default="1,9", help="branch ids of the bundled configuration")
    ap.add_argument("--seeds", type=int, default=1, help="traces per scenario and branch")
    ap.add_argument("--seed-base", type=int, default=SEED_BASE)
    ap.add_argument("--scenarios", help="comma-separated (default: all of `queuecast simulate --help`)")
    ap.add_argument("--traces", nargs="+", help="score these trace files instead of simulating")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-docs", action="store_true", help="print only; leave docs/ alone")
    ap.add_argument("--cache", help="pickle of the scored points: written after a replay, read instead of one")
    args = ap.parse_args(argv)

    began = time.monotonic()
    made_of = provenance()      # before the replay: the code that runs
    if args.cache and os.path.exists(args.cache):
        with open(args.cache, "rb") as f:
            judged, wall, simulated, made_of = pickle.load(f)
        return _report(args, judged, wall, simulated, made_of)
    with tempfile.TemporaryDirectory(prefix="eta-eval-") as tmp:
        if args.traces:
            traces = [named(p) for p in args.traces]
        else:
            names = args.scenarios.split(",") if args.scenarios else listed_scenarios()
            traces = [simulate(s, b, args.days, args.seed_base + k, tmp)
                      for s in names for b in args.branches.split(",") for k in range(args.seeds)]
        simulated = time.monotonic() - began
        biggest_first = sorted(traces, key=lambda t: -os.path.getsize(t.path))     # even out the workers
        with Pool(min(args.jobs, len(traces))) as pool:
            done = {j.trace.path: j for j in pool.imap_unordered(judge, biggest_first, chunksize=1)}
        judged = [done[t.path] for t in traces]
    wall = time.monotonic() - began
    if args.cache:
        with open(args.cache, "wb") as f:
            pickle.dump((judged, wall, simulated, made_of), f)
    return _report(args, judged, wall, simulated, made_of)


def _report(args: argparse.Namespace, judged: list[Judged], wall: float, simulated: float, made_of: str) -> int:
    import eta_report  # the tables and plots; beside this file
    report = eta_report.Report(judged, days=args.days, seconds=wall, simulating=simulated, jobs=args.jobs,
                               made_of=made_of)
    print(report.markdown())
    if not args.no_docs:
        report.write_docs(ROOT / "docs")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
