"""Which branches a process keeps holding, and what it keeps of the ones it lets go.

Two ways to run (QUEUECAST_HOLD_BRANCHES):

- `busy` (the default): every branch is held from the start, and a branch with work to do is never
  let go: a number not finished yet (waiting, called, held, skipped and still recallable) or a
  counter open. Such a branch needs a process even when nobody watches it or sends it a command:
  `tick` expires its numbers at closing, the prediction publisher records a boundary point every
  5 minutes for each number waiting (export-trace --predictions), and the notifier judges its
  leave-home messages on its state. A branch let go that another process writes to is held
  again within a round (`round`: its log moved), so a busy process holds every branch with work.
  The single-process hub (the demo) runs this way: nothing changes for it but that the branches
  with nothing to do are let go when idle. The notifier holds every branch and lets none go (it
  runs no round).
- `asked`: a branch is held only once something asks for it (a command, a feed, a view) and let go
  when idle, work or not: for hub processes behind a balancer that spreads branches over them,
  beside at least one `busy` process, which keeps the time-driven work going for every branch.

Views of branches let go (the /branches chooser, which lists every branch) are the view the branch
had when it was let go, with what depends on the clock brought forward (hub.views.brought_forward):
nothing else of it changes until its log does. Once its log moved (another process wrote to it,
found by the next `round`), a busy process holds it again and an asked one forgets the view, so
that the next chooser loads it. A chooser served every second loads nothing it has a view of.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hub import views
from hub.clock import Clock
from hub.domain.state import BranchState, CitizenRecord
from hub.domain.ticket import FINAL
from hub.service.branches import Branches

MODES = ("busy", "asked")
MAX_ROUND_SECONDS = 15.0       # how often idle branches are let go and moved ones looked at


@dataclass(frozen=True)
class Kept:
    """The citizens' records of a branch let go: no-shows count across branches (hub.domain.limits)."""

    id: str
    citizens: Mapping[str, CitizenRecord]


def has_work(st: BranchState) -> bool:
    return (any(c.open for c in st.counters.values())
            or any(t.state not in FINAL for t in st.tickets.values()))


class Holding:
    def __init__(self, branches: Branches, clock: Clock, mode: str = "busy"):
        if mode not in MODES:
            raise ValueError(f"hold mode: one of {', '.join(MODES)}, not {mode!r}")
        self.branches, self.clock, self.mode = branches, clock, mode
        self.books: dict[str, Kept] = {}
        self._views: dict[str, dict[str, Any]] = {}      # branch let go → its view then
        if mode == "busy":
            branches.keep.append(lambda branch, st: has_work(st))
        branches.on_hold.append(self._held)
        branches.on_let_go.append(self._let_go)

    @property
    def round_seconds(self) -> float:
        return max(0.1, min(MAX_ROUND_SECONDS, self.branches.idle_seconds / 4))

    async def round(self) -> None:
        """Let go the idle branches; then, of the branches let go, hold again (busy) the ones
        another process wrote to, or (asked) forget the view kept of them."""
        await self.branches.let_go_idle()
        for branch in await self.branches.moved():
            if self.mode == "busy":
                await self.branches.hold(branch)
            else:
                self._views.pop(branch, None)

    def kept_view(self, branch: str) -> dict[str, Any] | None:
        kept = self._views.get(branch)
        return None if kept is None else views.brought_forward(kept, self.branches.centre.branches[branch],
                                                               self.clock.now())

    def _held(self, branch: str, st: BranchState) -> None:
        self.books.pop(branch, None)
        self._views.pop(branch, None)

    def _let_go(self, branch: str, st: BranchState) -> None:
        self.books[branch] = Kept(branch, {p: r for p, r in st.citizens.items() if r.noshows or r.numbers})
        self._views[branch] = views.branch_view(st, self.clock.now())
