"""Writing branch snapshots (hub.store.snapshots), off the command path.

A loop step takes each held branch that moved EVERY events, or began a day, since its last
snapshot, serialises it under the branch lock (a state consistent with its seq) and stores it.
Any process may write one (the store keeps the newest of an epoch), so a branch is snapshotted
wherever it is busy; a start then folds at most about EVERY events of it (hub.service.snapshots).
"""
from __future__ import annotations

import asyncio
import json
from datetime import date

from hub.domain.snapshot import to_json
from hub.service.branches import Branches
from hub.store.snapshots import Snapshot, Snapshots

EVERY = 200                 # events folded since a branch's last snapshot before the next one: a start
                            # folds 100 on average, and a busy branch (1,700 a day) is written ~9 times a day
STEP_SECONDS = 10.0         # how often the loop looks


class Snapshotter:
    def __init__(self, branches: Branches, store: Snapshots, every: int = EVERY):
        self.branches, self.store, self.every = branches, store, every
        self.written = 0
        # branch → (seq, latest day) of the last snapshot this process wrote
        self._last: dict[str, tuple[int, date | None]] = {}
        # A branch reset (another epoch: its seqs start again) or let go starts afresh here too.
        branches.on_reset.append(self._forget)
        branches.on_let_go.append(lambda branch, st: self._forget(branch))

    def _forget(self, branch: str) -> None:
        self._last.pop(branch, None)

    def due(self, branch: str) -> bool:
        st = self.branches.states.get(branch)
        if st is None or st.seq == 0:
            return False
        if branch not in self._last:
            # First seen: started from a snapshot (the stored one will do until EVERY more events),
            # or from the full fold (write one now: the next start is quick).
            seq = self.branches.started_from.get(branch, 0)
            self._last[branch] = (seq, st.latest_day if seq else None)
        seq, day = self._last[branch]
        return st.seq - seq >= self.every or st.latest_day != day

    async def step(self) -> int:
        """Snapshot every branch that is due; how many were written."""
        n = 0
        for branch in [b for b in list(self.branches.states) if self.due(b)]:
            async with self.branches.lock(branch):
                st = self.branches.states.get(branch)
                if st is None or branch in self.branches.stale or st.seq == 0:      # let go meanwhile
                    continue
                tip = self.branches.tip(branch)
                if tip is None:
                    continue
                # Serialised under the lock: the state's containers move with the next event.
                snap = Snapshot(st.seq, self.branches.epochs[branch], tip,
                                json.dumps(to_json(st), ensure_ascii=False, separators=(",", ":")))
                day = st.latest_day
            await self.store.put(branch, snap)
            self._last[branch] = (snap.seq, day)
            n += 1
            await asyncio.sleep(0)          # one branch at a time: requests are served between
        self.written += n
        return n
