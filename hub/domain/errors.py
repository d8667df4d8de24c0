"""Refusals of the domain. Each has a stable snake_case code, an English and a Vietnamese sentence,
and a kind that the web layer maps to an HTTP status (the domain knows nothing of HTTP)."""
from __future__ import annotations

from typing import Any

# kind → meaning; hub.web.errors maps these to 4xx statuses
KINDS = ("bad_request", "invalid", "not_found", "conflict", "forbidden", "unauthorized", "rate_limited", "too_large",
         "unsupported_media", "unavailable")


class DomainError(Exception):
    def __init__(self, kind: str, code: str, message: str, message_vi: str = "", **details: Any):
        assert kind in KINDS, kind
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.message_vi = message_vi or message
        self.details = details


def invalid(code: str, message: str, message_vi: str = "", **details: Any) -> DomainError:
    return DomainError("invalid", code, message, message_vi, **details)


def not_found(code: str, message: str, message_vi: str = "", **details: Any) -> DomainError:
    return DomainError("not_found", code, message, message_vi, **details)


def conflict(code: str, message: str, message_vi: str = "", **details: Any) -> DomainError:
    return DomainError("conflict", code, message, message_vi, **details)


def forbidden(code: str, message: str, message_vi: str = "", **details: Any) -> DomainError:
    return DomainError("forbidden", code, message, message_vi, **details)


def unauthorized(code: str, message: str, message_vi: str = "", **details: Any) -> DomainError:
    return DomainError("unauthorized", code, message, message_vi, **details)


def excerpt(value: object, limit: int = 40) -> str:
    """What an error may quote of the input: its repr, cut short. Echoing whole inputs made one
    answer 70 KB long, and an error message is no place to reflect what an attacker wrote."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
