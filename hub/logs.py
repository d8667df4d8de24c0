"""One JSON line per log record: easy to grep, easy to ship. Phone numbers are masked by the caller;
tokens in paths and query strings are redacted here, from the hub's records and uvicorn's alike."""
from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# A ticket token is the holder's whole authority over the number (track, give back, opt in), and
# a console's ?token= a staff member's: neither may reach a log file, whoever reads it later.
_TOKEN_IN_PATH = re.compile(r"(/(?:t|api/tickets|ws/tickets|sse/tickets)/)[^/?#\s\"']+")
_TOKEN_IN_QUERY = re.compile(r"([?&](?:token|access_token)=)[^&#\s\"']*", re.IGNORECASE)
REDACTED = "\u2026"
# uvicorn's loggers that write request paths: the access log, and WebSocket handshakes on the error log.
UVICORN_LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    """`text` with every ticket token in a path and every ?token= value replaced by an ellipsis."""
    if "/" not in text and "token=" not in text.lower():
        return text
    return _TOKEN_IN_QUERY.sub(rf"\1{REDACTED}", _TOKEN_IN_PATH.sub(rf"\1{REDACTED}", text))


def _redacted(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


class RedactTokens(logging.Filter):
    """Rewrites a record's message, arguments and fields before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redacted(v) for k, v in record.args.items()}
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            record.fields = {k: _redacted(v) for k, v in fields.items()}
        return True


def redact_uvicorn() -> None:
    """Put the filter on uvicorn's loggers (after uvicorn.Config has configured them)."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def setup(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactTokens())
    root = logging.getLogger("queuecast")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
