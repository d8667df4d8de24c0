"""Redis URLs as queuecast reads them: `redis://HOST:PORT/DB[?prefix=qc:]`, shared by the store and
the broker (a deployment's keys and channels all start with the prefix)."""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit, urlunsplit


def split_url(url: str) -> tuple[str, str]:
    """'redis://h:p/0?prefix=qc:' → ('redis://h:p/0', 'qc:'); the prefix defaults to 'qc:'."""
    parts = urlsplit(url)
    prefix = parse_qs(parts.query).get("prefix", ["qc:"])[0]
    return urlunsplit(parts._replace(query="")), prefix
