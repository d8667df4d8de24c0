"""A seeded discrete-event simulator of one branch, for synthetic traces (`queuecast simulate`).

It drives the real, pure domain: every event of a simulated day is the answer of a command of
`hub.domain.commands` to the branch's `BranchState` at a simulated `now`, folded in with
`hub.domain.state.apply`, so the queue rules (calling order, per-citizen limits, caps, issuing
hours, holds, expiry) hold in a synthetic trace because the hub itself enforced them.

- `scenarios`  the named parameter sets ("normal", "busy", "quiet", "understaffed", "hold")
- `people`     who takes a number: the field mix and made-up citizens (shared with `hub.demo`)
- `holders`    what a holder does with a number: arrives, checks in, wanders off, gives it back
- `arrivals`   when numbers are taken: non-homogeneous Poisson profiles for both channels
- `staff`      the counters' people: speed, opening, lunch, short breaks, unplanned closures
- `branch_day` the event loop of one working day
- `run`        several working days in a row, with day-to-day drift: `simulate()`
- `trace`      writing the events as JSONL in the trace format (docs/trace.md)

Determinism: one `random.Random` seeded from (seed, scenario, branch) only, consumed in a fixed
order; no wall clock and no `hash()` of strings (salted per process). Days are simulated one after
the other from the same generator, so the first k days of an n-day run equal a k-day run.
"""
