"""A branch's state as JSON and back: what a snapshot of the branch at its `seq` keeps, so that a
process starts from it and the events after it instead of the whole log (hub.service.snapshots).

JSON, never pickle: whoever can write the store must not be able to make a hub run code. The
state from `from_json(config, to_json(state))` then folded further is the state the full fold
gives (tests/test_snapshot_properties.py): every field the fold made is written, the estimator's
learned state too (hub.domain.eta.snapshot), in the order it was made (dicts keep it). A snapshot
of another format (`FORMAT`) is not used (`from_json` answers None). One made under other
counters than the configuration's now (the fold starts from the configured ones) is brought to
them as the fold would have started: a counter added is there, closed; a closed counter takes its
configured fields; one the configuration dropped goes unless the log opened it or it serves. That
is exact for counters added; a log trimmed behind the snapshot could not be folded again anyway.
"""
from __future__ import annotations

from collections import deque
from datetime import date, datetime
from typing import Any

from hub.domain.config import Branch
from hub.domain.eta import snapshot as eta_snapshot
from hub.domain.kiosks import RECENT, KioskDevice, Kiosks
from hub.domain.state import BranchState, CitizenRecord, Counter
from hub.domain.ticket import State, Ticket

FORMAT = 1


def _t(v: datetime | None) -> str | None:
    return None if v is None else v.isoformat()


def _dt(v: str | None) -> datetime | None:
    return None if v is None else datetime.fromisoformat(v)


def _configured(config: Branch) -> list[Any]:
    return [[c.id, list(c.services)] for c in config.counters.values()]


def _ticket(t: Ticket) -> list[Any]:
    """A ticket as a list in its fields' order (a branch keeps some two days of them: no names)."""
    return [t.id, t.number, t.day.isoformat(), t.service, t.channel, t.priority, t.order, t.issued_at.isoformat(),
            t.citizen, t.phone, t.state.value, t.counter, _t(t.called_at), t.calls, t.checked_in,
            _t(t.skipped_at), _t(t.held_until), _t(t.finished_at), t.notify, t.travel_minutes, t.lang,
            None if t.rating is None else list(t.rating), [c.isoformat() for c in t.changes], t.nonce]


def _ticket_of(v: list[Any]) -> Ticket:
    issued_at = _dt(v[7])
    assert issued_at is not None
    return Ticket(v[0], v[1], date.fromisoformat(v[2]), v[3], v[4], v[5], v[6], issued_at, v[8], v[9], State(v[10]),
                  v[11], _dt(v[12]), v[13], v[14], _dt(v[15]), _dt(v[16]), _dt(v[17]), v[18], v[19], v[20],
                  None if v[21] is None else (v[21][0], v[21][1]), tuple(datetime.fromisoformat(c) for c in v[22]),
                  v[23])


def _device(d: KioskDevice) -> list[Any]:
    return [d.id, d.name, d.enrolled_at.isoformat(), d.state, d.by, _t(d.revoked_at), _t(d.last_issue),
            [[day.isoformat(), n] for day, n in d.issued.items()], [t.isoformat() for t in d.recent]]


def _device_of(v: list[Any]) -> KioskDevice:
    return KioskDevice(v[0], v[1], datetime.fromisoformat(v[2]), v[3], v[4], _dt(v[5]), _dt(v[6]),
                       {date.fromisoformat(day): n for day, n in v[7]},
                       deque((datetime.fromisoformat(t) for t in v[8]), maxlen=RECENT))


def to_json(st: BranchState) -> dict[str, Any]:
    """The state as JSON-ready values (json.dumps them; floats come back exactly)."""
    return {
        "format": FORMAT, "branch": st.id, "configured": _configured(st.config), "seq": st.seq,
        "tickets": [_ticket(t) for t in st.tickets.values()],
        "issued": [[d.isoformat(), s, n] for (d, s), n in st.issued.items()],
        "counters": [[c.id, list(c.services), c.open, c.current] for c in st.counters.values()],
        "citizens": {cid: {"numbers": [[d.isoformat(), [list(x) for x in xs]] for d, xs in rec.numbers.items()],
                           "noshows": {tid: t.isoformat() for tid, t in rec.noshows.items()}}
                     for cid, rec in st.citizens.items()},
        "next_order": st.next_order, "latest_day": None if st.latest_day is None else st.latest_day.isoformat(),
        "last_t": st.last_t,
        "kiosks": [_device(d) for d in st.kiosks.devices.values()],
        "eta": eta_snapshot.to_json(st.eta),
    }


def usable(config: Branch, v: Any) -> bool:
    """Whether `v` is a snapshot this code can start `config`'s branch from."""
    return isinstance(v, dict) and v.get("format") == FORMAT and v.get("branch") == config.id


def _reconfigured(config: Branch, before: list[Any], counters: dict[str, Counter]) -> dict[str, Counter]:
    """The snapshot's counters as the fold under `config` would have begun them (see above)."""
    was = {cid: tuple(services) for cid, services in before}
    out: dict[str, Counter] = {}
    for plan in config.counters.values():
        c = counters.pop(plan.id, None) or Counter(plan.id, plan.services)
        if not c.open and c.services == was.get(plan.id):
            c.services = plan.services
        out[plan.id] = c
    out.update((cid, c) for cid, c in counters.items() if cid not in was or c.open or c.current)
    return out


def from_json(config: Branch, v: Any) -> BranchState | None:
    """The state `to_json` wrote, or None if `v` is not `usable` for this branch as configured."""
    if not usable(config, v):
        return None
    st = BranchState(config)
    st.seq = v["seq"]
    st.tickets = {t[0]: _ticket_of(t) for t in v["tickets"]}
    st.issued = {(date.fromisoformat(d), s): n for d, s, n in v["issued"]}
    st.counters = {c[0]: Counter(c[0], tuple(c[1]), c[2], c[3]) for c in v["counters"]}
    if v["configured"] != _configured(config):
        st.counters = _reconfigured(config, v["configured"], st.counters)
    st.citizens = {cid: CitizenRecord(
        numbers={date.fromisoformat(d): [(x[0], x[1]) for x in xs] for d, xs in rec["numbers"]},
        noshows={tid: datetime.fromisoformat(t) for tid, t in rec["noshows"].items()})
        for cid, rec in v["citizens"].items()}
    st.next_order, st.last_t = v["next_order"], v["last_t"]
    st.latest_day = None if v["latest_day"] is None else date.fromisoformat(v["latest_day"])
    st.kiosks = Kiosks({d[0]: _device_of(d) for d in v["kiosks"]})
    eta_snapshot.restore(st.eta, v["eta"])
    return st
