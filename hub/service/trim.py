"""Trimming a branch's log past the retention window, archiving first (the hourly retention job).

The log grows by every event of every day; a process starts a branch from its snapshot and the
events after it (hub.service.snapshots), so the events before the snapshot are needed only by
`export-trace` of old days. Those of days older than `keep_days` are written to the archive
(hub.archive) and only then forgotten by the log (`EventLog.trim`: XTRIM MINID on Redis). What
is forgotten is a prefix of the log, and stops:
- before the snapshot's seq: a start needs the event at it (its tip) and those after it;
- at the first event of a day inside the window (numbers taken the evening before are of the next
  day: what follows them stays, even of an older day, until the next run);
and only a snapshot of the log's epoch counts. The archive is written before the log forgets, and
a run that stops half-way leaves events both archived and kept: run again, it does the same.
Several processes may run it at once: the archive merges, the trim is idempotent; they must share
the archive directory (or only one process is given one: QUEUECAST_LOG_ARCHIVE).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from hub.archive import Archive
from hub.store.eventlog import EventLog
from hub.store.snapshots import Snapshots

log = logging.getLogger("queuecast.retention")

PAGE = 2000                 # events read at a time from the start of a log
FIRST_PAGE = 20             # the first read: a log trimmed an hour ago starts inside the window
MAX_PAGES = 50              # per branch and run: a long backlog is taken over the next runs


async def trim_branch(eventlog: EventLog, snapshots: Snapshots, archive: Archive, branch: str,
                      cut: date) -> int:
    """Archive, then trim, the branch's events of days before `cut`; how many were trimmed."""
    head, snap = await eventlog.head(branch), await snapshots.get(branch)
    if snap is None or snap.epoch != head.epoch or snap.seq > head.seq:
        return 0
    through, first, days = 0, None, set()
    after, page = 0, FIRST_PAGE             # usually the log's first event is in the window already
    for _ in range(MAX_PAGES):
        evs = await eventlog.events_since(branch, after, page)
        for ev in evs:
            first = ev["seq"] if first is None else first
            if ev["seq"] >= snap.seq or date.fromisoformat(ev["day"]) >= cut:
                break
            through = ev["seq"]
            days.add(date.fromisoformat(ev["day"]))
        else:
            if len(evs) == page:
                after, page = evs[-1]["seq"], PAGE
                continue
        break
    if not through:
        return 0
    whole = []
    for day in sorted(days):
        evs = await eventlog.events_of_day(branch, day)
        archive.write(branch, day, evs)          # first: an OSError stops here, nothing forgotten
        if all(ev["seq"] <= through for ev in evs):
            whole.append(day)
    await eventlog.trim(branch, through, whole)
    n = through - (first or through) + 1
    log.info("log trimmed", extra={"fields": {"branch": branch, "through": through, "events": n,
                                              "days": [d.isoformat() for d in sorted(days)]}})
    return n


async def trim_logs(eventlog: EventLog, snapshots: Snapshots, archive: Archive, branches: Iterable[str],
                    now: datetime, keep_days: int) -> int:
    """Every branch's trim (one branch's fault stops no other's); how many events were trimmed."""
    cut = now.date() - timedelta(days=keep_days)
    n = 0
    for branch in branches:
        try:
            n += await trim_branch(eventlog, snapshots, archive, branch, cut)
        except Exception:
            log.exception("log not trimmed", extra={"fields": {"branch": branch}})
    return n
