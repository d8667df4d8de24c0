"""Run a server under test with probes, for explaining the fan-out figures (not for the figures:
the probes slow it down). Used by `bench/fanout.py --probe DIR`.

  python bench/fanout_probe.py DIR hub serve --host ... --port ...     # `python -m hub serve ...`
  python bench/fanout_probe.py DIR bare --port ...                     # the bare broadcast server

In DIR it writes, on demand and at the end:
- SIGUSR1: `mem-K.pickle`, a tracemalloc snapshot (allocating line only) -- the driver takes one before
  the subscribers connect and one once they are idle, and diffs them; and `order-K.json`, the
  subscribers' socket fds in the order the fan-out writes to them (fd order = creation order);
- SIGUSR2: starts cProfile (the measured phase); SIGTERM (or the end): stops it and writes
  `profile.pstats`, and `gc.json`: every cyclic-GC collection while profiling (generation, objects
  collected, pause in ms), from gc.callbacks.
uvicorn re-raises SIGTERM after a graceful shutdown; the handler installed here turns it into
SystemExit so the files are written (as bench/call_next.py's --profile does).
"""
from __future__ import annotations

import cProfile
import gc
import json
import os
import runpy
import signal
import sys
import time
import tracemalloc
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))      # this checkout's hub, not an installed one


def main() -> None:
    out = Path(sys.argv[1])
    target, rest = sys.argv[2], sys.argv[3:]
    out.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(1)                           # the allocating line is all report() groups by
    snaps = [0]
    prof = cProfile.Profile()
    state = {"profiling": False, "gc_start": 0.0}
    pauses: list[dict] = []

    def on_gc(phase: str, info: dict) -> None:
        if not state["profiling"]:
            return
        if phase == "start":
            state["gc_start"] = time.perf_counter()
        else:
            pauses.append({"gen": info["generation"], "collected": info["collected"],
                           "ms": round((time.perf_counter() - state["gc_start"]) * 1000, 3)})

    def dump_order() -> None:
        """The socket fds of the subscribers in the order the fan-out writes to them. Accepted sockets
        get the lowest free fd, so fd order is the order the kernel created the sockets in."""
        fds = []
        for obj in gc.get_objects():
            try:
                kind = type(obj).__name__
                if kind == "FeedHub":                                 # hub: FeedHub.boards[branch]
                    for subs in obj.boards.values():
                        for sub in list(subs):
                            if sub.direct is not None:
                                fds.append(sub.direct.protocol.transport.get_extra_info("socket").fileno())
                elif kind == "set" and obj and type(next(iter(obj))).__name__ == "ServerConnection":
                    fds = [ws.transport.get_extra_info("socket").fileno() for ws in obj]  # bare: `subs`
            except ReferenceError:                                    # a dead weak proxy
                continue
        (out / f"order-{snaps[0]}.json").write_text(json.dumps(fds))

    def dump_mem(*_) -> None:
        try:
            dump_order()
        except Exception:                   # a probe must never take the server down
            import traceback
            traceback.print_exc()
        was = state["profiling"]
        if was:
            prof.disable()
        gc.collect()
        tmp = out / f"mem-{snaps[0]}.tmp"
        tracemalloc.take_snapshot().dump(str(tmp))
        os.replace(tmp, out / f"mem-{snaps[0]}.pickle")       # complete once it has this name
        snaps[0] += 1
        if was:
            prof.enable()

    def start_profile(*_) -> None:
        if not state["profiling"]:
            state["profiling"] = True
            tracemalloc.stop()                      # its hooks would dominate the profile
            prof.enable()

    def finish(*_) -> None:
        raise SystemExit(0)

    def write() -> None:
        if state["profiling"]:
            prof.disable()
            prof.dump_stats(str(out / "profile.pstats"))
            (out / "gc.json").write_text(json.dumps(pauses))

    gc.callbacks.append(on_gc)
    signal.signal(signal.SIGUSR1, dump_mem)
    signal.signal(signal.SIGUSR2, start_profile)
    signal.signal(signal.SIGTERM, finish)
    try:
        if target == "hub":
            sys.argv = ["hub", *rest]
            runpy.run_module("hub", run_name="__main__", alter_sys=True)
        else:
            sys.argv = [str(BENCH / "fanout.py"), "_bare", *rest]
            sys.path.insert(0, str(BENCH))
            import fanout
            fanout.main(["_bare", *rest])
    except SystemExit:
        pass
    except BaseException:
        import traceback
        traceback.print_exc()                   # os._exit below would swallow it
    finally:
        write()
        os._exit(0)


def report(out: Path, connections: int, top: int = 25) -> str:
    """Text: what the idle connections hold (tracemalloc, after - before, per connection), where the
    measured phase spent CPU (cProfile), and the GC pauses."""
    import io
    import pstats

    lines = []
    snaps = sorted(out.glob("mem-*.pickle"))
    if len(snaps) >= 2 and connections:
        before, after = (tracemalloc.Snapshot.load(str(p)) for p in snaps[:2])
        for key in ("filename", "lineno"):
            stats = after.compare_to(before, key)
            total = sum(s.size_diff for s in stats)
            lines.append(f"-- traced memory growth by {key}: {total / connections / 1024:.2f} KiB per connection "
                         f"({connections} connections)")
            for s in stats[:top]:
                frame = s.traceback[0]
                where = frame.filename.split("site-packages/")[-1] if key == "filename" else \
                    f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}"
                lines.append(f"{s.size_diff / connections:10.0f} B/conn {s.count_diff / connections:7.2f} blocks/conn  {where}")
            lines.append("")
    for order in sorted(out.glob("order-*.json")):
        fds = json.loads(order.read_text())
        if len(fds) > 1:
            steps = [b - a for a, b in zip(fds, fds[1:])]
            near = sum(1 for d in steps if 0 < d <= 4) / len(steps)
            lines.append(f"-- fan-out write order ({order.name}, {len(fds)} sockets): {near:.0%} of steps go to "
                         f"the next-created socket (fd +1..+4); mean |fd step| {sum(map(abs, steps)) / len(steps):.0f}")
    prof = out / "profile.pstats"
    if prof.exists():
        for sort in ("tottime", "cumulative"):
            buf = io.StringIO()
            pstats.Stats(str(prof), stream=buf).strip_dirs().sort_stats(sort).print_stats(top)
            lines.append(f"-- cProfile of the measured phase, by {sort}")
            lines.append(buf.getvalue())
    gcf = out / "gc.json"
    if gcf.exists():
        pauses = json.loads(gcf.read_text())
        for gen in (0, 1, 2):
            ms = sorted(p["ms"] for p in pauses if p["gen"] == gen)
            if ms:
                lines.append(f"-- gc generation {gen}: {len(ms)} collections, total {sum(ms):.1f} ms, "
                             f"max {ms[-1]:.1f} ms, median {ms[len(ms) // 2]:.2f} ms")
    text = "\n".join(lines)
    (out / "report.txt").write_text(text)
    return text


if __name__ == "__main__":
    main()
