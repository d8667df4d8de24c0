"""The `queuecast` command (README, "Commands"). Exit 0 on success, 2 on bad arguments or input."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import date
from typing import Any, NoReturn, TextIO, TypeVar

from hub.config import ConfigError, load_config
from hub.domain.config import Branch
from hub.domain.errors import DomainError
from hub.settings import Settings, SettingsError

T = TypeVar("T")


class UsageError(Exception):
    """Bad arguments or input: one line on stderr, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line on stderr and exit 2, like every other bad input."""
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    from hub import __version__

    p = _Parser(prog="queuecast", description="Queue-number hub: API, live feeds, pages.")
    p.add_argument("--version", action="version", version=f"queuecast {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the hub, configured from QUEUECAST_* variables")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000)

    demo = sub.add_parser("demo", help="serve on the embedded default with live simulated traffic")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=_port, default=8000)

    notifier = sub.add_parser("notifier", help="run the notification worker as its own process")
    notifier.add_argument("--lease", type=float, default=60.0,
                          help="seconds a claimed message is held before another worker may take it (default 60)")

    outbox = sub.add_parser("outbox", help="the notification outbox: list messages, re-drive dead letters")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", required=True, parser_class=_Parser)
    listing = outbox_sub.add_parser("list", help="messages, most recently changed first, one JSON line each")
    listing.add_argument("--status", help="queued, sending, sent, delivered, failed, dead or dropped")
    listing.add_argument("--branch")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    redrive = outbox_sub.add_parser("redrive", help="put dead letters (failed, dead) back in the queue")
    redrive.add_argument("key", nargs="?", help="one message's key (default: every dead letter)")

    token = sub.add_parser("token", help="print a bearer token")
    kinds = token.add_subparsers(dest="kind", required=True, parser_class=_Parser)
    staff = kinds.add_parser("staff", help="a counter staff token for one branch (and counter)")
    staff.add_argument("--branch", required=True)
    staff.add_argument("--counter")
    staff.add_argument("--hours", type=float, default=14.0, help="validity (default 14)")
    citizen = kinds.add_parser("citizen", help="a token for a citizen whose CCCD was verified (VNeID)")
    citizen.add_argument("--id", required=True, dest="cccd")
    citizen.add_argument("--phone")
    citizen.add_argument("--hours", type=float, default=24.0, help="validity (default 24)")
    kiosk = kinds.add_parser("kiosk", help="enrol a kiosk device at a branch; print its token (valid until revoked)")
    kiosk.add_argument("--branch", required=True)
    kiosk.add_argument("--name", help="what the admin page calls it (default: Ki-ốt N)")

    export = sub.add_parser("export-trace", help="write a branch-day's event log as a JSONL trace")
    export.add_argument("--branch", required=True)
    export.add_argument("--date", required=True, help="YYYY-MM-DD")
    export.add_argument("-o", "--output", help="file, or - for stdout (the default)")
    export.add_argument("--predictions", metavar="FILE",
                        help="also write the ETA predictions the hub published for that day's numbers "
                             "to FILE (- for stdout), in the format of `eta replay`")

    from hub.sim.scenarios import SCENARIOS

    simulate = sub.add_parser("simulate", help="write a synthetic trace from the seeded branch simulator")
    simulate.add_argument("--branch", default="1", help="branch id (default 1)")
    simulate.add_argument("--days", type=int, default=3, help="working days to simulate (default 3)")
    simulate.add_argument("--seed", type=int, default=0, help="the same seed, the same trace (default 0)")
    simulate.add_argument("--scenario", default="normal", help=f"{', '.join(SCENARIOS)} (default normal)")
    simulate.add_argument("--start", help="first day, YYYY-MM-DD (default 2026-05-18, a Monday); "
                                          "days the branch does not work are passed over")
    simulate.add_argument("-o", "--output", required=True, help="file, or - for stdout")

    eta = sub.add_parser("eta", help="the expected-wait estimator on traces")
    eta_sub = eta.add_subparsers(dest="eta_command", required=True, parser_class=_Parser)
    replay = eta_sub.add_parser("replay", help="replay a trace through the live estimator; predictions to stdout")
    replay.add_argument("trace", help="a JSONL trace (docs/trace.md), or - for stdin")
    replay.add_argument("--replications", type=int, help=argparse.SUPPRESS)
    score = eta_sub.add_parser("score", help="score recorded predictions (export-trace --predictions) against "
                                             "what happened, beside NAIVE, QL and LES asked at the same points")
    score.add_argument("trace", help="the trace of the same days (export-trace), or - for stdin")
    score.add_argument("predictions", help="the predictions published for those days: lines of `eta replay` or "
                                             "`export-trace --predictions` (minutes from t to the first call; docs/eta.md)")
    score.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        return {"serve": _serve, "demo": _demo, "token": _token, "export-trace": _export,
                "eta": _eta, "simulate": _simulate, "notifier": _notifier,
                "outbox": _outbox}[args.command](args, settings)
    except (UsageError, SettingsError, ConfigError) as e:
        print(f"queuecast: {e}", file=sys.stderr)
        return 2
    except DomainError as e:
        print(f"queuecast: {e.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:             # `queuecast simulate -o - | head`: the reader has had enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 1-65535, got {port}")
    return port


def _free(host: str, port: int) -> None:
    """Say so in one line, before any banner, when the port is taken (the server would say it later,
    in a traceback-like log, with exit status 3)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)     # as uvicorn binds
            s.bind((host, port))
    except OSError as e:
        raise UsageError(f"cannot listen on {host}:{port} ({e.strerror or e}); try --port {port + 1 if port < 65535 else 8000}") from None


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from hub import logs, server
    from hub.app import create_app

    _free(args.host, args.port)
    logs.setup()
    settings = _public_url(settings, args)
    server.run(create_app(settings), args.host, args.port, settings)
    return 0


def _notifier(args: argparse.Namespace, settings: Settings) -> int:
    from hub import logs
    from hub.app import run_notifier

    if args.lease <= 0:
        raise UsageError("--lease must be positive")
    logs.setup()
    asyncio.run(run_notifier(settings, lease=args.lease))
    return 0


def _outbox(args: argparse.Namespace, settings: Settings) -> int:
    from dataclasses import asdict

    from hub.clock import RealClock, parse_start
    from hub.domain.identity import mask_recipient, mask_text
    from hub.store import open_store
    from hub.store.outbox import STATUSES, OutboxItem

    if args.outbox_command == "list":
        if args.status is not None and args.status not in STATUSES:
            raise UsageError(f"--status: one of {', '.join(STATUSES)}, got {args.status!r}")
        if args.branch is not None:
            _branch(settings, args.branch)          # an unknown branch is an error, not an empty list
        if args.limit < 1:
            raise UsageError("--limit must be at least 1")
    _database_exists(settings)

    async def redrive() -> int:
        async with open_store(settings.database) as store:
            if args.key is not None and await store.outbox.get(args.key) is None:
                raise UsageError(f"no message with key {args.key!r}")
            # Due at the hub's "now" (QUEUECAST_CLOCK may run behind the wall clock), or never claimed.
            clock = RealClock(settings.zone, parse_start(settings.clock, settings.zone))
            return await store.outbox.redrive(clock.now().timestamp(), args.key)

    async def recent() -> list[OutboxItem]:
        async with open_store(settings.database) as store:
            return await store.outbox.recent(args.status, args.branch, args.limit)

    if args.outbox_command == "redrive":
        moved = asyncio.run(redrive())
        if args.key is not None and moved == 0:
            raise UsageError(f"{args.key} is not a dead letter (only failed or dead messages are re-driven)")
        print(f"re-driven: {moved}")
        return 0
    for item in asyncio.run(recent()):
        row = asdict(item)
        # Never a phone number, push keys or a holder's tracking link on a terminal.
        row["recipient"] = mask_recipient(item.recipient)
        row["detail"] = mask_text(item.detail)
        row["params"] = {k: mask_text(v) if isinstance(v, str) else v for k, v in item.params.items()}
        print(json.dumps(row, ensure_ascii=False, separators=(",", ":")))
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from hub import demo

    _free(args.host, args.port)
    return demo.run(_public_url(settings, args), args.host, args.port)


def _public_url(settings: Settings, args: argparse.Namespace) -> Settings:
    """Links in answers point at where this process listens, unless QUEUECAST_PUBLIC_URL says where."""
    if os.environ.get("QUEUECAST_PUBLIC_URL"):
        return settings
    host = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    return replace(settings, public_url=f"http://{host}:{args.port}")


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from hub.auth import Tokens
    from hub.domain import identity
    from hub.phones import normalize_phone

    if args.kind == "kiosk":            # an event in the branch's log, as on the admin page
        from hub.app import enrol_kiosk

        branch_id = _branch(settings, args.branch).id
        _database_exists(settings)
        body = asyncio.run(enrol_kiosk(settings, branch_id, args.name))
        print(body["token"])
        print(f"queuecast: enrolled kiosk device {body['device']} ({body['name']}) at branch {branch_id}", file=sys.stderr)
        return 0
    if args.hours <= 0:
        raise UsageError("--hours must be positive")
    tokens = Tokens(settings.resolve_secret())
    if args.kind == "staff":
        branch = _branch(settings, args.branch)
        if args.counter is not None and args.counter not in branch.counters:
            raise UsageError(f"branch {branch.id} has no counter {args.counter!r} "
                             f"(counters: {', '.join(branch.counters)})")
        print(tokens.staff(branch.id, args.counter, ttl=args.hours * 3600))
    else:
        cccd = identity.validate_cccd(args.cccd)
        phone = normalize_phone(args.phone) if args.phone else None
        print(tokens.citizen(cccd, phone, ttl=args.hours * 3600))
    return 0


def _read(name: str, parse: Callable[[TextIO], T]) -> T:
    """A whole file parsed before anything is written: a bad line is an error naming file and line."""
    from hub.domain.trace import TraceError

    try:
        f: TextIO = sys.stdin if name == "-" else open(name, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"{name}: {e.strerror}") from None
    try:
        with f:
            return parse(f)
    except TraceError as e:
        raise UsageError(f"{name}: {e}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{name}: not UTF-8 text") from None


def _eta(args: argparse.Namespace, settings: Settings) -> int:
    from hub.domain.eta.estimator import Estimator
    from hub.domain.eta.plans import Setting
    from hub.domain.eta.replay import replay
    from hub.domain.trace import parse

    centre = load_config(settings.config or None)

    def setting_of(branch: str) -> Setting:
        return Setting.of(centre.branches.get(branch))

    if args.eta_command == "score" and args.predictions == "-" and args.trace == "-":
        raise UsageError("only one of the trace and the predictions can be read from stdin")
    events = _read(args.trace, lambda f: list(parse(f)))
    out = sys.stdout
    if args.eta_command == "score":
        from hub.domain.eta import scoring
        from hub.score_tables import score_tables

        recorded = _read(args.predictions, scoring.parse_predictions)
        if not recorded.lines:
            raise UsageError(f"{args.predictions}: no predictions to score")
        matched = scoring.match(events, recorded, lambda b: Estimator(b, setting_of(b)))
        if not matched.samples:
            raise UsageError(f"no prediction of {args.predictions} is at a point of {args.trace}'s schedule: "
                             "are they of the same branch and days?")
        if matched.stray > len(matched.samples):
            print(f"queuecast: warning: {matched.stray} of {len(recorded.lines)} predictions are at no point of the "
                  "trace (another branch, or other days?)", file=sys.stderr)
        figures = scoring.summary(matched)
        out.write(json.dumps(figures, ensure_ascii=False) + "\n" if args.json else score_tables(figures))
        return 0
    if args.replications is not None and args.replications < 10:
        raise UsageError("--replications must be at least 10")
    for row in replay(events, setting_of, args.replications):
        out.write(json.dumps(row, separators=(",", ":")) + "\n")
    out.flush()
    return 0


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
    from hub.sim import run, scenarios, trace

    branch = _branch(settings, args.branch)
    if args.scenario not in scenarios.SCENARIOS:
        raise UsageError(f"no scenario {args.scenario!r} (scenarios: {', '.join(scenarios.SCENARIOS)})")
    if args.days < 1:
        raise UsageError(f"--days must be at least 1, got {args.days}")
    try:
        start = date.fromisoformat(args.start) if args.start else run.DEFAULT_START
    except ValueError:
        raise UsageError(f"--start: expected YYYY-MM-DD, got {args.start!r}") from None
    events = run.simulate(branch, settings.zone, days=args.days, start=start, seed=args.seed, scenario=args.scenario)
    with _writer(args.output) as out:
        trace.write(events, out)
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from hub.archive import of_day
    from hub.domain.events import Event, in_trace, to_trace
    from hub.store import open_store
    from hub.store.predictions import FIELDS as PREDICTION_FIELDS

    branch = _branch(settings, args.branch)
    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        raise UsageError(f"--date: expected YYYY-MM-DD, got {args.date!r}") from None
    _database_exists(settings)
    if args.predictions is not None:
        if _stdout(args.predictions) and _stdout(args.output):
            raise UsageError("--predictions: the trace goes to stdout already; give a file to one of them")
        if not _stdout(args.output) and os.path.abspath(args.predictions) == os.path.abspath(args.output):
            raise UsageError("--predictions: give another file than -o, the trace's")

    async def read() -> tuple[list[Event], list[dict[str, Any]]]:
        async with open_store(settings.database) as store:
            events = of_day(settings.log_archive, branch.id, day, await store.log.events_of_day(branch.id, day))
            return events, (await store.predictions.of_day(branch.id, day) if args.predictions is not None else [])

    events, predicted = asyncio.run(read())        # read first: a store error truncates no file
    if args.predictions is not None:
        with _writer(args.predictions) as out:
            for p in predicted:         # exactly the replay's lines: its fields, its order
                out.write(json.dumps({k: p[k] for k in PREDICTION_FIELDS}, separators=(",", ":")) + "\n")
    with _writer(args.output) as out:
        for ev in events:
            if in_trace(ev):
                out.write(json.dumps(to_trace(ev), ensure_ascii=False, separators=(",", ":")) + "\n")
    return 0


def _stdout(name: str | None) -> bool:
    return name in (None, "-")


def _writer(name: str | None) -> AbstractContextManager[TextIO]:
    """Where to write: stdout for none or "-" (left open), else the file, named in the error."""
    if name is None or _stdout(name):         # None spelt out, so that `name` is a str below
        return contextlib.nullcontext(sys.stdout)
    try:
        return open(name, "w", encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write {name}: {e.strerror}") from None


def _database_exists(settings: Settings) -> None:
    """Commands that read the store refuse a missing SQLite file: opening it would make an empty one."""
    path = settings.sqlite_path()
    if path is not None and not path.exists():
        raise UsageError(f"no database at {path} (set QUEUECAST_DATABASE)")


def _branch(settings: Settings, branch_id: str) -> Branch:
    centre = load_config(settings.config or None)
    if branch_id not in centre.branches:
        raise UsageError(f"no branch {branch_id!r} in the configuration (branches: {', '.join(centre.branches)})")
    return centre.branches[branch_id]
