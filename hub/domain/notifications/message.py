"""A message owed to a number's holder: what the rules make owed, the outbox keeps and a sender is
handed. Its key is the outbox's dedup key and the gateway's request id."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

CHANNELS = ("sms", "push", "zalo", "log")
TRIGGERS = ("issued", "ahead", "leave", "called", "skipped", "expired")
LANGS = ("vi", "en")

# An E.164 phone number ("+84912345678") or a browser's PushSubscription.toJSON()
# ({"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}}).
Recipient = str | Mapping[str, object]


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
    params: Mapping[str, object] = field(default_factory=dict)   # the template's fields (notifier/templates.py)
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
