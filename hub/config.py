"""Load the centre's configuration from TOML into the domain's frozen dataclasses.

`load_config()` reads the bundled `hub/hanoi.toml` (or a given file) and `parse_config()`
turns the parsed TOML into a `Centre`. Every problem is a `ConfigError` naming the file
and the key path, e.g. ``hanoi.toml: branches[2].counters[0].services[1]: unknown service
'abc'``, so whoever edits the file can go straight to the mistake: the hub refuses to start
on a bad file rather than call numbers from a wrong plan.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import zoneinfo
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from hub.domain.config import WEEKDAYS, Branch, Calendar, Centre, CounterPlan, Policy, Service

BUNDLED = Path(__file__).with_name("hanoi.toml")

_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")       # fromisoformat alone also takes 20260101
_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_SERVICE_KEYS = ("id", "name", "name_en", "first_number", "daily_cap", "service_minutes")
_POLICY_KEYS = tuple(f.name for f in dataclasses.fields(Policy))


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message names file and key."""


class _Invalid(Exception):
    """Raised with the key path only; parse_config() adds the file name."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path or '(top level)'}: {message}")


def load_config(path: str | os.PathLike[str] | None = None) -> Centre:
    """Read and validate a configuration file; None means the bundled hanoi.toml."""
    source = Path(path) if path is not None else BUNDLED
    try:
        with open(source, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:             # its message carries line and column
        raise ConfigError(f"{source}: TOML syntax error: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{source}: not UTF-8 text: {e}") from e
    return parse_config(data, str(source))


def parse_config(data: dict[str, Any], source: str) -> Centre:
    """Validate parsed TOML (as from tomllib) and build the Centre; source names the file."""
    try:
        return _centre(data)
    except _Invalid as e:
        raise ConfigError(f"{source}: {e}") from None


# -- the document, top down -------------------------------------------------------------

def _centre(data: Any) -> Centre:
    _keys(data, "", required=("centre", "services", "branches"), optional=("policy",))
    table = _keys(data["centre"], "centre", required=("name", "name_en", "timezone"),
                  optional=("working_days", "holidays", "extra_working_days"))
    tz = _str(table["timezone"], "centre.timezone")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _Invalid("centre.timezone", f"unknown time zone {tz!r}") from None
    calendar = _calendar(table)
    policy = _policy(data.get("policy", {}), "policy", Policy())
    catalogue = _services(data["services"])
    branches: dict[str, Branch] = {}
    for i, raw in enumerate(_list(data["branches"], "branches")):
        branch = _branch(raw, f"branches[{i}]", catalogue, policy, calendar)
        if branch.id in branches:
            raise _Invalid(f"branches[{i}].id", f"duplicate branch id {branch.id!r}")
        branches[branch.id] = branch
    return Centre(name=_str(table["name"], "centre.name"),
                  name_en=_str(table["name_en"], "centre.name_en"),
                  timezone=tz, branches=branches)


def _calendar(table: dict[str, Any]) -> Calendar:
    days = _ids(table.get("working_days", list(WEEKDAYS[:5])), "centre.working_days",
                WEEKDAYS, "weekday")

    def dates(key: str) -> frozenset[date]:
        items = _list(table.get(key, []), f"centre.{key}", nonempty=False)
        return frozenset(_date(v, f"centre.{key}[{i}]") for i, v in enumerate(items))

    return Calendar(working_weekdays=frozenset(WEEKDAYS.index(d) for d in days),
                    holidays=dates("holidays"), extra_working_days=dates("extra_working_days"))


def _policy(table: Any, path: str, base: Policy) -> Policy:
    """Overlay the keys of `table` on `base`: centre [policy] on the defaults, a branch's on the centre's."""
    _keys(table, path, required=(), optional=_POLICY_KEYS)
    changes: dict[str, Any] = {}
    for key, value in table.items():
        default = getattr(base, key)                 # the dataclass default tells the type
        if isinstance(default, time):
            changes[key] = _time(value, f"{path}.{key}")
        elif isinstance(default, tuple):
            changes[key] = _networks(value, f"{path}.{key}")
        elif isinstance(default, int):
            changes[key] = _int(value, f"{path}.{key}")
        else:
            changes[key] = _str(value, f"{path}.{key}")
    policy = dataclasses.replace(base, **changes)
    if policy.absent not in ("skip", "hold"):
        raise _Invalid(f"{path}.absent", f'must be "skip" or "hold", got {policy.absent!r}')

    # The order may break by combining levels (a branch closing before the centre's
    # issuing_until): blame a key this table actually sets.
    def blame(*keys: str) -> str:
        return f"{path}.{next((k for k in keys if k in table), keys[0])}"

    if not policy.opens < policy.issuing_until:
        raise _Invalid(blame("issuing_until", "opens"), f"issuing_until ({policy.issuing_until:%H:%M})"
                       f" must be after opens ({policy.opens:%H:%M})")
    if not policy.issuing_until <= policy.closes:
        raise _Invalid(blame("issuing_until", "closes"), f"issuing_until ({policy.issuing_until:%H:%M})"
                       f" must not be after closes ({policy.closes:%H:%M})")
    return policy


def _services(value: Any) -> dict[str, tuple[Service, str]]:
    """The catalogue: each service with its key path, for error messages about its numbers."""
    catalogue: dict[str, tuple[Service, str]] = {}
    for i, table in enumerate(_list(value, "services")):
        p = f"services[{i}]"
        _keys(table, p, required=_SERVICE_KEYS)
        sid = _str(table["id"], f"{p}.id")
        if not _SLUG.fullmatch(sid):
            raise _Invalid(f"{p}.id", f"{sid!r} is not a lowercase ascii slug like 'dat-dai'")
        if sid in catalogue:
            raise _Invalid(f"{p}.id", f"duplicate service id {sid!r}")
        first = _int(table["first_number"], f"{p}.first_number")
        if not 1000 <= first <= 9999:                # displays and voice calls use four digits
            raise _Invalid(f"{p}.first_number", f"must have four digits, got {first}")
        minutes = table["service_minutes"]
        if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not minutes > 0:
            raise _Invalid(f"{p}.service_minutes", f"expected a number > 0, got {minutes!r}")
        service = Service(id=sid, name=_str(table["name"], f"{p}.name"),
                          name_en=_str(table["name_en"], f"{p}.name_en"), first_number=first,
                          daily_cap=_int(table["daily_cap"], f"{p}.daily_cap", below=1000),
                          service_minutes=float(minutes))
        catalogue[sid] = (service, p)
    return catalogue


def _branch(table: Any, p: str, catalogue: dict[str, tuple[Service, str]],
            centre_policy: Policy, calendar: Calendar) -> Branch:
    _keys(table, p, required=("id", "name", "name_en", "address", "services", "counters"),
          optional=("caps", "policy"))
    bid = _str(table["id"], f"{p}.id")
    ids = _ids(table["services"], f"{p}.services", catalogue, "service")
    caps = _keys(table.get("caps", {}), f"{p}.caps", required=(), optional=tuple(ids),
                 unknown="not among this branch's services")
    services: dict[str, Service] = {}
    for sid in ids:                                  # in the branch's display order
        service = catalogue[sid][0]
        if sid in caps:
            cap = _int(caps[sid], f"{p}.caps.{sid}", below=1000)
            service = dataclasses.replace(service, daily_cap=cap)
        services[sid] = service

    # A number alone must tell the field within a day, so a branch's ranges are disjoint.
    ordered = sorted(services.values(), key=lambda s: s.first_number)
    for a, b in zip(ordered, ordered[1:]):
        if a.last_number >= b.first_number:
            # The catalogue's own ranges collide (blame b's start) or a branch cap made them.
            collide = catalogue[a.id][0].last_number >= b.first_number
            path = f"{catalogue[b.id][1]}.first_number" if collide else f"{p}.caps.{a.id}"
            raise _Invalid(path, f"numbers of {a.id!r} ({a.first_number}-{a.last_number}) overlap"
                           f" those of {b.id!r} (from {b.first_number}) in branch {bid!r}")
    if ordered and ordered[-1].last_number > 9999:
        s = ordered[-1]
        path = f"{p}.caps.{s.id}" if s.id in caps else f"{catalogue[s.id][1]}.daily_cap"
        raise _Invalid(path, f"numbers of {s.id!r} run to {s.last_number}, past 9999")

    counters: dict[str, CounterPlan] = {}
    for j, ct in enumerate(_list(table["counters"], f"{p}.counters")):
        cp = f"{p}.counters[{j}]"
        _keys(ct, cp, required=("id", "services"))
        cid = _str(ct["id"], f"{cp}.id")
        if cid in counters:
            raise _Invalid(f"{cp}.id", f"duplicate counter id {cid!r}")
        served = _ids(ct["services"], f"{cp}.services", catalogue, "service")
        for k, sid in enumerate(served):
            if sid not in services:
                raise _Invalid(f"{cp}.services[{k}]", f"service {sid!r} is not among the"
                               f" services of branch {bid!r}")
        counters[cid] = CounterPlan(id=cid, services=tuple(served))
    covered = {sid for c in counters.values() for sid in c.services}
    for k, sid in enumerate(ids):
        if sid not in covered:                       # its numbers would never be called
            raise _Invalid(f"{p}.services[{k}]", f"no counter serves {sid!r}")

    return Branch(id=bid, name=_str(table["name"], f"{p}.name"),
                  name_en=_str(table["name_en"], f"{p}.name_en"),
                  address=_str(table["address"], f"{p}.address", empty_ok=True),
                  services=services, counters=counters,
                  policy=_policy(table.get("policy", {}), f"{p}.policy", centre_policy),
                  calendar=calendar)


# -- typed readers: each checks one value and names its path on failure ------------------

def _kind(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__)


def _keys(table: Any, path: str, *, required: tuple[str, ...], optional: tuple[str, ...] = (),
          unknown: str = "") -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _Invalid(path, f"expected a table, got {_kind(table)}")
    allowed = required + optional
    for key in table:                                # typos like `closs` must not pass silently
        if key not in allowed:
            raise _Invalid(f"{path}.{key}".lstrip("."), unknown or
                           f"unknown key (expected one of: {', '.join(allowed)})")
    for key in required:
        if key not in table:
            raise _Invalid(f"{path}.{key}".lstrip("."), "missing required key")
    return table


def _str(value: Any, path: str, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str):
        raise _Invalid(path, f"expected a string, got {_kind(value)}")
    if not empty_ok and not value.strip():
        raise _Invalid(path, "must not be empty")
    return value


def _int(value: Any, path: str, *, below: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(path, f"expected an integer, got {_kind(value)}")
    if value <= 0:
        raise _Invalid(path, f"must be > 0, got {value}")
    if below is not None and value >= below:
        raise _Invalid(path, f"must be < {below}, got {value}")
    return value


def _list(value: Any, path: str, *, nonempty: bool = True) -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid(path, f"expected an array, got {_kind(value)}")
    if nonempty and not value:
        raise _Invalid(path, "must not be empty")
    return value


def _ids(value: Any, path: str, known: Any, what: str) -> list[str]:
    """A non-empty list of distinct names, each one of `known`."""
    names: list[str] = []
    for i, item in enumerate(_list(value, path)):
        name = _str(item, f"{path}[{i}]")
        if name not in known:
            raise _Invalid(f"{path}[{i}]", f"unknown {what} {name!r}")
        if name in names:
            raise _Invalid(f"{path}[{i}]", f"duplicate {what} {name!r}")
        names.append(name)
    return names


def _networks(value: Any, path: str) -> tuple[str, ...]:
    """Address ranges in CIDR form ("10.1.0.0/16", "2001:db8::/48"; a lone address is a /32 or /128),
    kept in their normal spelling. Host bits set ("10.1.2.3/16") are refused: a typo, most likely."""
    out: list[str] = []
    for i, item in enumerate(_list(value, path, nonempty=False)):
        text = _str(item, f"{path}[{i}]")
        try:
            out.append(str(ipaddress.ip_network(text.strip())))
        except ValueError as e:
            raise _Invalid(f"{path}[{i}]", f"not an address range like \"10.1.0.0/16\": {e}") from None
    return tuple(out)


def _time(value: Any, path: str) -> time:
    m = _HHMM.fullmatch(value) if isinstance(value, str) else None
    if not m:
        raise _Invalid(path, f'expected a time "HH:MM", got {value!r}')
    return time(int(m[1]), int(m[2]))


def _date(value: Any, path: str) -> date:
    if isinstance(value, date) and not isinstance(value, datetime):    # a TOML local date
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise _Invalid(path, f"expected an ISO date YYYY-MM-DD, got {value!r}")
