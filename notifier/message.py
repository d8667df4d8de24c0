"""What the notifier hands a sender (a Message) and what a sender answers (a Result)."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping, Union

CHANNELS = ("sms", "push", "zalo", "log")
TRIGGERS = ("issued", "ahead", "leave", "called", "skipped", "expired")
LANGS = ("vi", "en")

# An E.164 phone number ("+84912345678") or a browser's PushSubscription.toJSON()
# ({"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}}).
Recipient = Union[str, Mapping[str, object]]


def key(branch: str, ticket: str, trigger: str, channel: str) -> str:
    """The outbox's dedup key, also the gateway's request id: each trigger fires at most once per
    ticket and channel. Ticket ids repeat across branches, so the branch is part of it."""
    return f"{branch}/{ticket}:{trigger}:{channel}"


@dataclass(frozen=True)
class Message:
    branch: str
    ticket: str                                   # the ticket id within its branch ("20260519-2001")
    trigger: str                                  # one of TRIGGERS
    channel: str                                  # one of CHANNELS
    recipient: Recipient
    params: Mapping[str, object] = field(default_factory=dict)   # the template's fields (notifier.templates)
    lang: str = "vi"

    def __post_init__(self) -> None:
        if self.trigger not in TRIGGERS:
            raise ValueError(f"unknown trigger {self.trigger!r}")
        if self.channel not in CHANNELS:
            raise ValueError(f"unknown channel {self.channel!r}")
        if self.lang not in LANGS:
            raise ValueError(f"unknown language {self.lang!r}")

    @property
    def key(self) -> str:
        return key(self.branch, self.ticket, self.trigger, self.channel)

    @property
    def phone(self) -> str:
        if not isinstance(self.recipient, str):
            raise TypeError(f"{self.key}: the recipient is a push subscription, not a phone number")
        return self.recipient

    @property
    def subscription(self) -> Mapping[str, object]:
        if isinstance(self.recipient, str):
            raise TypeError(f"{self.key}: the recipient is a phone number, not a push subscription")
        return self.recipient


class Outcome(str, Enum):
    SENT = "sent"              # the gateway took it (delivery reports may follow)
    RETRY = "retry"            # worth trying again later: the gateway was slow, down or busy
    PERMANENT = "permanent"    # trying again cannot help: bad number, opted out, gone, refused


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    provider_id: str | None = None       # the gateway's id of the message, to match delivery reports
    retry_after: float | None = None     # seconds, when the gateway said (429 Retry-After)
    error: str | None = None             # snake_case code, stable across gateways (see notifier.sender)
    detail: str = ""                     # the gateway's own words, for the admin's outbox view

    @classmethod
    def sent(cls, provider_id: str | None = None) -> "Result":
        return cls(Outcome.SENT, provider_id=provider_id)

    @classmethod
    def retry(cls, error: str, detail: str = "", retry_after: float | None = None) -> "Result":
        return cls(Outcome.RETRY, error=error, detail=detail, retry_after=retry_after)

    @classmethod
    def permanent(cls, error: str, detail: str = "") -> "Result":
        return cls(Outcome.PERMANENT, error=error, detail=detail)
