"""Settings from the environment (README, "Configuration"). A bad value fails at start, naming the variable."""
from __future__ import annotations

import base64
import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub import redis_url
from hub.clock import parse_start
from hub.domain.kiosks import RECENT
from hub.domain.push import DEFAULT_PUSH_HOSTS, PushDestinations, ip_literal, parse_hosts


class SettingsError(ValueError):
    pass


SMS_ENDPOINTS = {"esms": "https://rest.esms.vn", "twilio": "https://api.twilio.com"}
ZALO_ENDPOINT = "https://business.openapi.zalo.me"
# eSMS sends unaccented text unless asked (IsUnicode costs 70-character SMS); Twilio takes Unicode as is.
SMS_DIACRITICS_BY_DEFAULT = {"esms": False, "twilio": True, "log": True}
MIN_KEEP_DAYS = 3
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
# What py_vapid (and the push services) accept as the VAPID "sub": a mailto: address or an https origin.
_VAPID_SUBJECT = re.compile(r"mailto:[^@\s]+@[^@\s]+|https://(?:localhost|[\w-]+(?:\.[\w-]+)+)", re.IGNORECASE)


@dataclass(frozen=True)
class Settings:
    database: str = "sqlite:///./queuecast.db"
    broker: str = ""                     # "" → memory:// with sqlite, the same Redis with redis
    redis_min_replicas: str = ""         # replicas that must have an append (WAIT); "" → by URL (redis_replicas)
    redis_wait_ms: int = 500             # how long an append waits for them before answering 503
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
    sms_unicode: str = ""                # "" → the provider's habit (SMS_DIACRITICS_BY_DEFAULT)
    zalo_url: str = ""                   # "" → ZALO_ENDPOINT
    zalo_token: str = ""                 # the Official Account's access token
    zalo_template: str = ""              # the approved ZNS template's id
    vapid_private_key: str = ""          # "" → generated once and kept beside the sqlite file
    vapid_subject: str = "mailto:queuecast@localhost"
    # Where web push may go: the push services' host suffixes (or IP addresses), comma-separated;
    # and whether they may be private, loopback or link-local addresses (a lab's or the tests' own).
    push_hosts: str = ",".join(DEFAULT_PUSH_HOSTS)
    push_allow_private: str = "off"
    notifier: str = "inline"
    notify_ahead: int = 5
    notify_rate: int = 20                # messages a second per gateway, from each notifier process
    issue_rate: str = "30/60"            # numbers per client address: COUNT/SECONDS (kiosk devices and staff are exempt)
    kiosk_pace: str = "6/60"             # numbers per enrolled kiosk device: COUNT/SECONDS, judged from the log
    max_body: int = 16 * 1024            # bytes of a request body
    keep_outbox_days: int = 30           # sent, delivered and dropped messages (they hold phone numbers)
    keep_predictions_days: int = 90      # recorded ETA predictions, kept to be scored
    log_archive: str = ""                # directory of trimmed branch-days (hub.archive); "" → the log is never trimmed
    log_keep_days: int = 3               # days of events the log keeps once an archive is set (hub/service/trim.py)
    trusted_proxies: str = ""            # peers whose X-Forwarded-For is believed: IPs, CIDRs, or *; "" → none
    max_feeds_per_address: int = 50      # open live feeds (WebSocket and SSE) per client address
    request_timeout: int = 20            # seconds a client has to send a request's headers, then its body
    branch_idle_seconds: int = 600       # a branch unused this long, with no watcher here, is let go
    hold_branches: str = "busy"          # busy: every branch with work stays held; asked: only those asked about

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        if env is None:
            env = os.environ
        s = cls()
        values: dict[str, Any] = {}     # fields named by the environment: text, whole numbers parsed below
        for name in s.__dataclass_fields__:
            var = f"QUEUECAST_{name.upper()}"
            if var in env and env[var] != "":
                values[name] = env[var]
        for name in ("redis_wait_ms", "notify_ahead", "notify_rate", "max_body", "keep_outbox_days", "keep_predictions_days",
                     "log_keep_days", "max_feeds_per_address", "request_timeout", "branch_idle_seconds"):
            if name in values:
                try:
                    values[name] = int(values[name])
                except ValueError:
                    raise SettingsError(f"QUEUECAST_{name.upper()}: not a whole number: {values[name]!r}") from None
        return replace(s, **values).validated()

    def validated(self) -> Settings:
        if not self.database.startswith("sqlite:///"):
            try:
                redis_url.parse(self.database)
            except ValueError as e:
                raise SettingsError(f"QUEUECAST_DATABASE: expected sqlite:///PATH or a Redis URL: {e}") from None
        self.redis_replicas()
        if not 1 <= self.redis_wait_ms <= 60_000:
            raise SettingsError(f"QUEUECAST_REDIS_WAIT_MS: 1 to 60000 milliseconds, got {self.redis_wait_ms}")
        if self.broker and self.broker != "memory://":
            try:
                redis_url.parse(self.broker)
            except ValueError as e:
                raise SettingsError(f"QUEUECAST_BROKER: expected memory:// or a Redis URL: {e}") from None
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
        if self.sms_unicode.lower() not in ("", *_BOOLEANS):
            raise SettingsError(f"QUEUECAST_SMS_UNICODE: expected on or off, got {self.sms_unicode!r}")
        _ = self.push_destinations        # a bad value fails at start, naming the variable
        for var, url in (("QUEUECAST_SMS_URL", self.sms_url), ("QUEUECAST_ZALO_URL", self.zalo_url)):
            if url and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", url):
                raise SettingsError(f"{var}: expected an http(s):// base URL, got {url!r}")
        if self.zalo_template and not self.zalo_template.isdigit():
            raise SettingsError(f"QUEUECAST_ZALO_TEMPLATE: a ZNS template id is a number, got {self.zalo_template!r}")
        if self.notify_rate < 1:
            raise SettingsError(f"QUEUECAST_NOTIFY_RATE: at least 1 message a second, got {self.notify_rate}")
        # A number's messages can still be owed on the day after its own (hub.domain.state keeps a
        # day's numbers that long): its keys must be remembered longer, or a rule could owe one again.
        for name in ("keep_outbox_days", "keep_predictions_days"):
            if getattr(self, name) < MIN_KEEP_DAYS:
                raise SettingsError(f"QUEUECAST_{name.upper()}: at least {MIN_KEEP_DAYS} days, got {getattr(self, name)}")
        # A state forgets the tickets of days before yesterday, so no event of such a day is appended
        # after it: only days that can no longer grow are archived and trimmed.
        if self.log_keep_days < MIN_KEEP_DAYS:
            raise SettingsError(f"QUEUECAST_LOG_KEEP_DAYS: at least {MIN_KEEP_DAYS} days, got {self.log_keep_days}")
        if self.notify_ahead < 1:
            raise SettingsError(f"QUEUECAST_NOTIFY_AHEAD: at least 1, got {self.notify_ahead}")
        if not _VAPID_SUBJECT.fullmatch(self.vapid_subject):
            raise SettingsError("QUEUECAST_VAPID_SUBJECT: expected mailto:someone@example.org or an https:// origin, "
                                f"got {self.vapid_subject!r}")
        if self.vapid_private_key:
            _check_vapid_key(self.vapid_private_key)
        self.rate_limit()
        self.kiosk_rate()
        self.proxies()
        if self.max_feeds_per_address < 1:
            raise SettingsError(f"QUEUECAST_MAX_FEEDS_PER_ADDRESS: at least 1, got {self.max_feeds_per_address}")
        if not 1 <= self.request_timeout <= 3600:
            raise SettingsError(f"QUEUECAST_REQUEST_TIMEOUT: 1 to 3600 seconds, got {self.request_timeout}")
        if not 1 <= self.branch_idle_seconds <= 7 * 86400:
            raise SettingsError(f"QUEUECAST_BRANCH_IDLE_SECONDS: 1 to 604800 seconds, got {self.branch_idle_seconds}")
        if self.hold_branches not in ("busy", "asked"):
            raise SettingsError(f"QUEUECAST_HOLD_BRANCHES: expected busy or asked, got {self.hold_branches!r}")
        if self.config and not Path(self.config).is_file():
            raise SettingsError(f"QUEUECAST_CONFIG: no such file {self.config!r}")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def broker_url(self) -> str:
        return self.broker or ("memory://" if self.database.startswith("sqlite:") else self.database)

    def redis_replicas(self) -> int:
        """QUEUECAST_REDIS_MIN_REPLICAS: replicas that must have an append before it is acknowledged
        (Redis WAIT); unset, 1 for Sentinel and Cluster URLs (a failover promotes a replica), 0 for
        one server. Not for SQLite."""
        if self.redis_min_replicas == "":
            return 0 if self.sqlite_path() else redis_url.default_min_replicas(redis_url.parse(self.database))
        if self.sqlite_path():
            raise SettingsError("QUEUECAST_REDIS_MIN_REPLICAS: only with a Redis database (QUEUECAST_DATABASE=redis...)")
        if not self.redis_min_replicas.isdigit() or int(self.redis_min_replicas) > 16:
            raise SettingsError(f"QUEUECAST_REDIS_MIN_REPLICAS: a whole number of replicas, 0 to 16, "
                                f"got {self.redis_min_replicas!r}")
        return int(self.redis_min_replicas)

    def rate_limit(self) -> tuple[int, float]:
        try:
            count, seconds = self.issue_rate.split("/")
            out = int(count), float(seconds)
            if out[0] < 1 or out[1] <= 0:
                raise ValueError
            return out
        except ValueError:
            raise SettingsError(f"QUEUECAST_ISSUE_RATE: expected COUNT/SECONDS like 30/60, got {self.issue_rate!r}") from None

    def kiosk_rate(self) -> tuple[int, float]:
        """QUEUECAST_KIOSK_PACE: one kiosk device issues up to COUNT numbers in a row, then COUNT per
        SECONDS (hub.domain.kiosks.Kiosks.pace_wait)."""
        try:
            count, seconds = self.kiosk_pace.split("/")
            out = int(count), float(seconds)
            if not (1 <= out[0] <= RECENT and 0 < out[1] <= 86400):
                raise ValueError
            return out
        except ValueError:
            raise SettingsError(f"QUEUECAST_KIOSK_PACE: expected COUNT/SECONDS like 6/60 (COUNT 1-{RECENT}, "
                                f"SECONDS up to a day), got {self.kiosk_pace!r}") from None

    @property
    def push_destinations(self) -> PushDestinations:
        """QUEUECAST_PUSH_HOSTS and QUEUECAST_PUSH_ALLOW_PRIVATE, as the domain and the notifier read them."""
        if self.push_allow_private.lower() not in _BOOLEANS:
            raise SettingsError(f"QUEUECAST_PUSH_ALLOW_PRIVATE: expected on or off, got {self.push_allow_private!r}")
        try:
            hosts = parse_hosts(self.push_hosts)
        except ValueError as e:
            raise SettingsError(f"QUEUECAST_PUSH_HOSTS: {e}") from None
        rule = PushDestinations(hosts, _BOOLEANS[self.push_allow_private.lower()])
        # An address that could never be reached is a mistake to say now, not a dead letter later.
        for host in hosts:
            if ip_literal(host) is not None and not rule.address_allowed(host):
                raise SettingsError(f"QUEUECAST_PUSH_HOSTS: {host} is not a public address; "
                                    "set QUEUECAST_PUSH_ALLOW_PRIVATE=on to push to it (tests, a lab), never in production")
        return rule
    def proxies(self) -> list[str]:
        """QUEUECAST_TRUSTED_PROXIES as uvicorn's forwarded_allow_ips takes them; [] trusts no peer."""
        out = [item.strip() for item in self.trusted_proxies.split(",") if item.strip()]
        for item in out:
            if item == "*":
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise SettingsError("QUEUECAST_TRUSTED_PROXIES: expected IP addresses or CIDRs separated by commas "
                                    f"(or *), got {item!r}") from None
        return out

    @property
    def sms_base_url(self) -> str:
        return (self.sms_url or SMS_ENDPOINTS.get(self.sms_provider, "")).rstrip("/")

    @property
    def zalo_base_url(self) -> str:
        return (self.zalo_url or ZALO_ENDPOINT).rstrip("/")

    @property
    def sms_diacritics(self) -> bool:
        """Whether SMS texts keep their Vietnamese diacritics (QUEUECAST_SMS_UNICODE)."""
        if self.sms_unicode:
            return _BOOLEANS[self.sms_unicode.lower()]
        return SMS_DIACRITICS_BY_DEFAULT[self.sms_provider]

    def sqlite_path(self) -> Path | None:
        return Path(self.database.removeprefix("sqlite:///")) if self.database.startswith("sqlite:///") else None

    def resolve_secret(self) -> str:
        """QUEUECAST_SECRET, or one generated once and kept beside the sqlite file (mode 600)."""
        return self.secret or self._kept_beside_database(".secret", "QUEUECAST_SECRET", "so that every hub process "
                                                         "signs tokens alike", lambda: secrets.token_urlsafe(32))

    def resolve_vapid_key(self) -> str:
        """QUEUECAST_VAPID_PRIVATE_KEY, or one generated once and kept beside the sqlite file (mode 600):
        browsers subscribed with its public key, so it must outlive restarts."""
        if self.vapid_private_key:
            return self.vapid_private_key
        key = self._kept_beside_database(".vapid", "QUEUECAST_VAPID_PRIVATE_KEY", "so that every process "
                                         "pushes with the key the browsers subscribed with", _new_vapid_key)
        _check_vapid_key(key, where=f"{self.sqlite_path()}.vapid")
        return key

    def _kept_beside_database(self, suffix: str, var: str, why: str, make: Callable[[], str]) -> str:
        db = self.sqlite_path()
        if db is None:
            raise SettingsError(f"{var}: required with a shared (redis://) database, {why}")
        path = db.with_name(db.name + suffix)
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        value = make()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return value


def _new_vapid_key() -> str:
    """A P-256 private key as the raw 32 bytes in base64url, the form `web-push generate-vapid-keys` prints."""
    from cryptography.hazmat.primitives.asymmetric import ec

    value = ec.generate_private_key(ec.SECP256R1()).private_numbers().private_value
    return base64.urlsafe_b64encode(value.to_bytes(32, "big")).decode().rstrip("=")


def _check_vapid_key(key: str, where: str = "QUEUECAST_VAPID_PRIVATE_KEY") -> None:
    from py_vapid import Vapid

    try:
        Vapid.from_string(key)
    except Exception:   # py_vapid lets base64, DER and curve errors through as they come
        raise SettingsError(f"{where}: not a P-256 private key (raw base64url or DER)") from None
