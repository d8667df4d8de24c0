"""Settings from the environment (README, "Configuration"). A bad value fails at start, naming the variable."""
from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.clock import parse_start


class SettingsError(ValueError):
    pass


@dataclass(frozen=True)
class Settings:
    database: str = "sqlite:///./queuecast.db"
    broker: str = ""                     # "" → memory:// with sqlite, the same Redis with redis
    secret: str = ""                     # "" → generated once and kept beside the sqlite file
    config: str = ""                     # "" → the bundled Hanoi configuration
    tz: str = "Asia/Ho_Chi_Minh"
    clock: str = "real"
    public_url: str = "http://127.0.0.1:8000"
    sms_provider: str = "log"
    sms_url: str = ""
    sms_key: str = ""
    sms_secret: str = ""
    sms_sender: str = ""
    notifier: str = "inline"
    notify_ahead: int = 5
    issue_rate: str = "30/60"            # numbers per client address: COUNT/SECONDS (kiosk devices use a staff token and are exempt)
    max_body: int = 16 * 1024            # bytes of a request body

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        s = cls()
        values = {}
        for name in s.__dataclass_fields__:
            var = f"QUEUECAST_{name.upper()}"
            if var in env and env[var] != "":
                values[name] = env[var]
        for name in ("notify_ahead", "max_body"):
            if name in values:
                try:
                    values[name] = int(values[name])
                except ValueError:
                    raise SettingsError(f"QUEUECAST_{name.upper()}: not a whole number: {values[name]!r}") from None
        return replace(s, **values).validated()

    def validated(self) -> "Settings":
        if not (self.database.startswith("sqlite:///") or self.database.startswith("redis://")):
            raise SettingsError(f"QUEUECAST_DATABASE: expected sqlite:///PATH or redis://HOST:PORT/DB, got {self.database!r}")
        if self.broker and not (self.broker == "memory://" or self.broker.startswith("redis://")):
            raise SettingsError(f"QUEUECAST_BROKER: expected memory:// or redis://..., got {self.broker!r}")
        try:
            tz = ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"QUEUECAST_TZ: unknown time zone {self.tz!r}") from None
        try:
            parse_start(self.clock, tz)
        except ValueError:
            raise SettingsError(f"QUEUECAST_CLOCK: expected 'real' or an ISO time like 2026-05-19T08:30:00+07:00, got {self.clock!r}") from None
        if self.notifier not in ("inline", "worker"):
            raise SettingsError(f"QUEUECAST_NOTIFIER: expected inline or worker, got {self.notifier!r}")
        if self.sms_provider not in ("log", "esms", "twilio"):
            raise SettingsError(f"QUEUECAST_SMS_PROVIDER: expected log, esms or twilio, got {self.sms_provider!r}")
        self.rate_limit()
        if self.config and not Path(self.config).is_file():
            raise SettingsError(f"QUEUECAST_CONFIG: no such file {self.config!r}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def broker_url(self) -> str:
        return self.broker or ("memory://" if self.database.startswith("sqlite:") else self.database)

    def rate_limit(self) -> tuple[int, float]:
        try:
            count, seconds = self.issue_rate.split("/")
            out = int(count), float(seconds)
            if out[0] < 1 or out[1] <= 0:
                raise ValueError
            return out
        except ValueError:
            raise SettingsError(f"QUEUECAST_ISSUE_RATE: expected COUNT/SECONDS like 30/60, got {self.issue_rate!r}") from None

    def sqlite_path(self) -> Path | None:
        return Path(self.database.removeprefix("sqlite:///")) if self.database.startswith("sqlite:///") else None

    def resolve_secret(self) -> str:
        """QUEUECAST_SECRET, or one generated once and kept beside the sqlite file (mode 600)."""
        if self.secret:
            return self.secret
        db = self.sqlite_path()
        if db is None:
            raise SettingsError("QUEUECAST_SECRET: required with a shared (redis://) database, "
                                "so that every hub process signs tokens alike")
        path = db.with_name(db.name + ".secret")
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return value
