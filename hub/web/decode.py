"""Decoding requests: bounded JSON bodies, bearer tokens, Idempotency-Key. Every failure is a
DomainError in the contract's shape, raised before anything is changed."""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal, TypeVar, overload

from starlette.requests import Request

from hub.auth import Claims
from hub.domain.errors import DomainError, excerpt, forbidden, invalid
from hub.service.pipeline import IdemRequest

MAX_IDEMPOTENCY_KEY = 200
MAX_INT_DIGITS = 300            # digits of a JSON integer kept as an int (a double reaches 1.8e308)
# Visible ASCII, spaces inside (a UUID, a ULID, "counter-3/17:42:05"); a server takes off any space
# or tab around it (RFC 9110 5.5). Anything else is no key a client chose. (/openapi.json says so.)
IDEMPOTENCY_KEY = r"^[!-~](?:[ -~]*[!-~])?$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY)
T = TypeVar("T")


def _err(kind: str, code: str, en: str, vi: str) -> DomainError:
    return DomainError(kind, code, en, vi)


async def json_body(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The body as a JSON object, read at most `max_body` bytes far (413 past it)."""
    limit = request.app.state.settings.max_body
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    request.state.raw_body = raw
    if (raw.strip() or required) and not _is_json(request.headers.get("content-type", "")):
        # A cross-site page can POST text/plain or a form without asking (no CORS preflight); it
        # cannot send application/json. So a body of any other type is refused before it is read.
        raise _err("unsupported_media", "unsupported_media_type",
                   "The request body must be sent as application/json.",
                   "Nội dung yêu cầu phải có kiểu application/json.")
    if not raw.strip():
        if required:
            raise _err("bad_request", "malformed_json", "The request body must be a JSON object.",
                       "Nội dung yêu cầu phải là một đối tượng JSON.")
        return {}
    try:
        data = json.loads(raw, parse_int=_number)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _err("bad_request", "malformed_json", f"The body is not valid JSON: {e}.",
                   "Nội dung yêu cầu không phải JSON hợp lệ.") from None
    if not isinstance(data, dict):
        raise _err("bad_request", "malformed_json", "The request body must be a JSON object.",
                   "Nội dung yêu cầu phải là một đối tượng JSON.")
    _check_text(data)
    return data


def _number(digits: str) -> int | float:
    """A JSON integer, read as a double reads it once it has more digits than any double holds
    exactly: a 400-digit one is inf (and refused as out of range), not a Python int that every
    float() downstream (travel_minutes, a push subscription's expirationTime) fails on with a 500."""
    return int(digits) if len(digits) <= MAX_INT_DIGITS else float(digits)


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


# JSON may spell a lone UTF-16 surrogate (\ud800), which no UTF-8 store can keep, and control
# characters, which no field of ours means; both are refused where they come in, not when saved.
_BAD_CHAR = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _check_text(data: Any) -> None:
    """Every key and string of the body, without recursion (JSON nests as deep as the parser
    allows); the refusal names where (`field`: "subscription.endpoint", "tags.2")."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, str):
            if _BAD_CHAR.search(value):
                raise invalid("invalid_text",
                              "Text in the request holds a control character or an unpaired surrogate.",
                              "Nội dung yêu cầu chứa ký tự điều khiển hoặc ký tự không hợp lệ.",
                              field=_BAD_CHAR.sub("?", where)[:80])
        elif isinstance(value, dict):
            for k, v in value.items():
                inner = f"{where}.{k}" if where else str(k)
                stack.append((inner, k))          # a key is text too
                stack.append((inner, v))
        elif isinstance(value, list):
            stack.extend((f"{where}.{i}" if where else str(i), v) for i, v in enumerate(value))


def _too_large(limit: int) -> DomainError:
    return _err("too_large", "body_too_large", f"The request body is larger than {limit} bytes.",
                f"Nội dung yêu cầu vượt quá {limit} byte.")


# A field of one type is of that type; optional, it may be None unless a default is given.
@overload
def field(data: dict[str, Any], name: str, kind: type[T], *, required: Literal[True] = True) -> T: ...


@overload
def field(data: dict[str, Any], name: str, kind: type[T], *, required: bool, default: T) -> T: ...


@overload
def field(data: dict[str, Any], name: str, kind: type[T], *, required: bool) -> T | None: ...


@overload
def field(data: dict[str, Any], name: str, kind: tuple[type, ...], *, required: bool = True,
          default: Any = None) -> Any: ...


def field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True,
          default: Any = None) -> Any:
    if name not in data or data[name] is None:
        if required:
            raise invalid("missing_field", f"Field {excerpt(name)} is required.", f"Thiếu trường {excerpt(name)}.", field=name)
        return default
    value = data[name]
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)                    # JSON has numbers, not ints: 5.0 is the integer 5 (JSON Schema agrees)
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise invalid("invalid_field", f"Field {excerpt(name)} must be a {want}.", f"Trường {excerpt(name)} không hợp lệ.",
                      field=name)
    return value


@overload
def bearer(request: Request, *, required: Literal[True]) -> Claims: ...


@overload
def bearer(request: Request, *, required: bool) -> Claims | None: ...


def bearer(request: Request, *, required: bool) -> Claims | None:
    header = request.headers.get("authorization", "")
    if not header:
        if required:
            raise _err("unauthorized", "token_required", "This action needs a bearer token.",
                       "Thao tác này cần mã xác thực.")
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _err("unauthorized", "invalid_token", "Authorization must be 'Bearer <token>'.",
                   "Mã xác thực không hợp lệ.")
    claims: Claims = request.app.state.tokens.verify(token.strip())
    return claims


def staff(request: Request, branch: str, counter: str | None = None) -> Claims:
    """A staff token for this branch; a counter-bound one only for its own counter."""
    claims = bearer(request, required=True)
    if claims.kind != "staff":
        raise forbidden("staff_only", "This action needs a staff token.", "Thao tác này dành cho cán bộ.")
    if claims.branch != branch:
        raise forbidden("wrong_branch", f"This token is for branch {claims.branch}, not {branch}.",
                        f"Mã xác thực dành cho chi nhánh {claims.branch}, không phải {branch}.")
    if counter is not None and claims.counter not in (None, counter):
        raise forbidden("wrong_counter", f"This token is for counter {claims.counter}, not {counter}.",
                        f"Mã xác thực dành cho quầy {claims.counter}, không phải {counter}.")
    return claims


def idempotency(request: Request, claims: Claims | None, status: int = 200) -> IdemRequest | None:
    """The request's Idempotency-Key, if any; `status` is the one a success is answered with."""
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    key = key.strip(" \t")                # as a server does (in-process, nothing has)
    if len(key) > MAX_IDEMPOTENCY_KEY or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise invalid("invalid_idempotency_key",
                      f"Idempotency-Key must be 1–{MAX_IDEMPOTENCY_KEY} visible ASCII characters.",
                      "Idempotency-Key không hợp lệ.")
    raw = getattr(request.state, "raw_body", b"")
    # Anonymous keys (kiosks) are scoped to the client address as well: a key another client
    # happens to send must not hand it someone else's ticket.
    who = claims.subject if claims else f"anonymous@{request.client.host if request.client else '-'}"
    if claims is not None and claims.kind == "citizen" and claims.cccd:
        # The key is stored in the branch's log: a citizen is named by the deployment's keyed
        # pseudonym of the CCCD, never by the identity number itself.
        who = f"citizen:{request.app.state.tokens.pseudonym(claims.cccd)}"
    fp = hashlib.sha256(b"\n".join([request.method.encode(), request.url.path.encode(), who.encode(), raw])).hexdigest()
    return IdemRequest(f"{who}|{key}", fp, status)
