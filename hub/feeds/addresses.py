"""Open feed connections per client address, at most a set number each (QUEUECAST_MAX_FEEDS_PER_ADDRESS).

A feed holds a socket, a task and a queue for as long as it is open: without a cap, one client
could open them by the thousand. The cap is per address, not per process total, so one abuser
does not shut everyone out; it is generous, since a branch's lobby TVs and counter screens may all
reach the hub through one NAT address. The address is the real peer: X-Forwarded-For counts only
from QUEUECAST_TRUSTED_PROXIES (hub.server)."""
from __future__ import annotations


class AddressSlots:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open: dict[str, int] = {}
        self.refused = 0            # read by /metrics

    def take(self, address: str) -> bool:
        """One more connection for `address`, or False (and nothing taken) if it has `limit` open."""
        n = self.open.get(address, 0)
        if n >= self.limit:
            self.refused += 1
            return False
        self.open[address] = n + 1
        return True

    def give_back(self, address: str) -> None:
        n = self.open.get(address, 0) - 1
        if n > 0:
            self.open[address] = n
        else:
            self.open.pop(address, None)       # addresses with nothing open are forgotten
