"""Starting a branch from its snapshot and the events after it, and keeping snapshots fresh.

`load_state` is how a process gets a branch's state (Branches.load, reload): the snapshot kept
beside the log (hub.store.snapshots) if the log still holds the very event it ends with (its
`tip`, compared at its seq, which trimming never removes) and this code can read it; then only
the events after it are folded. Otherwise the full fold, with the archived days before the log's
first kept event (hub.archive) when the log was trimmed.

They are written by hub.service.snapshotter, off the command path.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from hub.archive import Archive
from hub.domain.config import Branch
from hub.domain.events import Event
from hub.domain.snapshot import from_json
from hub.domain.state import BranchState, apply, fold
from hub.store.errors import StoreUnavailable
from hub.store.eventlog import EventLog
from hub.store.snapshots import Snapshot, Snapshots

log = logging.getLogger("queuecast.snapshots")


def spelling(ev: Event) -> str:
    """One spelling of an event (as hub.service.branches.spelling: a state's tip)."""
    return json.dumps(ev, sort_keys=True)


class TrimmedLog(StoreUnavailable):
    """The log was trimmed, and neither a usable snapshot nor the archive holds what it forgot."""


@dataclass
class Loaded:
    state: BranchState
    epoch: str
    tip: str | None             # spelling of the last event folded; None for an empty log
    started_from: int           # the seq of the snapshot it was started from; 0: the full fold


async def load_state(config: Branch, eventlog: EventLog, snapshots: Snapshots | None,
                     archive: Archive | None = None) -> Loaded:
    branch = config.id
    head = await eventlog.head(branch)
    snap = await snapshots.get(branch) if snapshots is not None else None
    if snap is not None and 0 < snap.seq <= head.seq:
        evs = await eventlog.events_since(branch, snap.seq - 1)
        if evs and evs[0]["seq"] == snap.seq and spelling(evs[0]) == snap.tip:
            st = _restored(config, snap)
            if st is not None:
                for ev in evs[1:]:
                    apply(st, ev)
                return Loaded(st, head.epoch, spelling(evs[-1]), snap.seq)
    evs = await eventlog.events_since(branch, 0)
    if evs and evs[0]["seq"] != 1:
        older = [ev for ev in (archive.events(branch) if archive is not None else []) if ev["seq"] < evs[0]["seq"]]
        evs = older + evs
        if [ev["seq"] for ev in older] != list(range(1, evs[len(older)]["seq"])):
            raise TrimmedLog(f"branch {branch}: the log keeps events from seq {evs[len(older)]['seq']} on, and "
                             "no snapshot it still ends at nor the archive (QUEUECAST_LOG_ARCHIVE) has the ones before")
    return Loaded(fold(config, evs), head.epoch, spelling(evs[-1]) if evs else None, 0)


def _restored(config: Branch, snap: Snapshot) -> BranchState | None:
    try:
        st = from_json(config, json.loads(snap.data))
    except Exception as e:          # not what this code writes (another format, damaged): the full fold
        log.warning("snapshot not readable", extra={"fields": {"branch": config.id, "error": repr(e)}})
        return None
    return st if st is not None and st.seq == snap.seq else None
