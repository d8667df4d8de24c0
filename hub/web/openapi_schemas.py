"""The vocabulary of /openapi.json (hub.web.openapi): what a request may carry and what an answer
holds, as JSON Schema, built from the hub's own configuration and settings so that it tells the
truth about this deployment: its branches, counters and fields are enums, its push services the
only endpoints a subscription may name, its limits the ones the handlers enforce.

Every refusal these describe is the hub's own: a value outside a schema here gets a 4xx in the
contract's shape, and a value inside one is refused only for what a schema cannot say (a field this
branch does not offer, a push key that is not a P-256 point), each such refusal named in the
operation's description.
"""
from __future__ import annotations

import re
from typing import Any

import phonenumbers

from hub.domain.config import Centre
from hub.domain.holder import MAX_CHANGES
from hub.domain.kiosks import NAME_MAX
from hub.domain.push import MAX_ENDPOINT, PushDestinations
from hub.web.decode import IDEMPOTENCY_KEY, MAX_IDEMPOTENCY_KEY
from hub.web.kiosks import MAX_CODE

Schema = dict[str, Any]

# Text in a request: no control character but tab, newline and return (hub.web.decode refuses them
# anywhere in a body, keys included: 422 invalid_text). Nor a lone UTF-16 surrogate, which JSON can
# spell (\ud800) but no Unicode string holds, so no pattern can name it: the description says so.
TEXT = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$"
TICKET_TOKEN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$"          # hub.auth.Tokens.ticket
BEARER = r"^qc1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"               # hub.auth.Tokens.issue
ENROL_CODE = r"^ke1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{22}$"             # hub.auth.Tokens.enrol_code
DEVICE = r"^k[0-9a-f]{10}$"                                      # hub.service.kiosks.new_device_id
NUMBER = r"^[0-9]{4}$"                                           # four digits (hub.config: first_number, ≤ 9999)
DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
CLOCK = r"^[0-9]{2}:[0-9]{2}$"
SEQ = r"^(?:-?[0-9]+)?$"                                          # hub.web.feeds: a seq, or nothing
MAX_TOKEN = 512              # characters of a ticket token the document promises; longer ones are no token of ours


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Any], required: tuple[str, ...] | list[str] = (), **extra: Any) -> Schema:
    return {"type": "object", "properties": props, "required": list(required), **extra}


def nullable(schema: Schema) -> Schema:
    """An optional field of a request: the handlers read null as absent (hub.web.decode.field)."""
    return {"anyOf": [schema, {"type": "null"}]}


def text(max_length: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", "pattern": TEXT, **extra}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


def body(props: dict[str, Any], required: tuple[str, ...] = ()) -> Schema:
    """A request body: a JSON object whose unknown members are ignored, as long as their text is
    text (a control character anywhere is refused, names included)."""
    return obj(props, required, propertyNames=ref("Text"), additionalProperties=ref("Json"))


def phone_pattern() -> str:
    """A Vietnamese mobile number as +84… or 0…, by libphonenumber's own data (hub.phones reads
    numbers with the same library): `\\d` spelled [0-9], since both Python and ECMAScript let `\\d`
    match other scripts' digits, which the hub refuses."""
    data = phonenumbers.PhoneMetadata.metadata_for_region("VN")
    mobile = data.mobile.national_number_pattern if data and data.mobile else None
    assert mobile, "libphonenumber has no Vietnamese mobile numbers"
    return rf"^(?:\+84|0)(?:{mobile.replace(chr(92) + 'd', '[0-9]')})$"


def endpoint_pattern(push: PushDestinations) -> str:
    """An https URL on one of the push services this hub may send to (QUEUECAST_PUSH_HOSTS)."""
    hosts = "|".join(rf"(?:[a-z0-9-]+\.)*{re.escape(h)}" if not _is_address(h) else re.escape(h)
                     for h in push.hosts)
    return rf"^https://(?:{hosts})/[!-~]*$"


def _is_address(host: str) -> bool:
    return bool(re.fullmatch(r"[0-9.]+|[0-9a-f:]+", host))


def schemas(centre: Centre, push: PushDestinations) -> dict[str, Schema]:
    services = sorted({s for b in centre.branches.values() for s in b.services})
    service = {"enum": services, "description": "a field (lĩnh vực) of this hub; each branch offers some of them"}
    counter = {"enum": sorted({c for b in centre.branches.values() for c in b.counters}),
               "description": "a counter of the branch"}
    eta = {"type": ["object", "null"], "properties": {k: {"type": "number", "minimum": 0} for k in ("p10", "p50", "p90")},
           "required": ["p10", "p50", "p90"], "description": "minutes until the call: p10 ≤ p50 ≤ p90"}
    maybe_eta = {"type": "object", "properties": {k: {"type": ["number", "null"]} for k in ("p10", "p50", "p90")},
                 "required": ["p10", "p50", "p90"], "description": "minutes; null when there is nothing to go by"}
    s, opt_s, i = {"type": "string"}, {"type": ["string", "null"]}, {"type": "integer"}
    kiosk = obj({"device": {"type": "string", "pattern": DEVICE}, "name": s,
                 "state": {"enum": ["pending", "active", "revoked"]}, "enrolled_at": s, "by": s,
                 "revoked_at": opt_s, "last_issue": opt_s, "issued_today": {"type": "integer", "minimum": 0}},
                ["device", "name", "state", "enrolled_at", "issued_today"])
    serving = {"type": "array", "items": obj({"number": s, "counter": opt_s}, ["number"])}
    return {
        "Text": text(description="text without control characters (tab, newline and return aside) or lone "
                                 "surrogates (\\ud800-\\udfff escapes that pair with nothing): 422 invalid_text"),
        "Json": {"description": "any JSON value whose text is Text", "anyOf": [
            {"type": ["null", "boolean", "number"]}, ref("Text"), {"type": "array", "items": ref("Json")},
            {"type": "object", "propertyNames": ref("Text"), "additionalProperties": ref("Json")}]},
        "Error": obj({"error": ref("ErrorBody")}, ["error"], additionalProperties=False),
        "ErrorBody": obj({
            "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "description": "stable, snake_case"},
            "message": {"type": "string", "minLength": 1, "description": "English"},
            "message_vi": {"type": "string", "description": "Vietnamese"},
            "field": {"type": "string", "description": "the request field at fault (a.b.0 inside objects and arrays)"},
            "retry_after": {"type": "integer", "minimum": 0, "description": "seconds (also in Retry-After)"},
            "next_working_day": {"type": "string", "pattern": DATE}, "state": s, "outbox_status": s},
            ["code", "message"]),
        # -- requests ------------------------------------------------------------------------------
        "IssueRequest": body({
            "service": service, "channel": {"enum": ["kiosk", "online"]},
            "priority": nullable({"type": "boolean", "description": "only from a kiosk device or staff (403 otherwise)"}),
            "phone": nullable({"type": "string", "pattern": phone_pattern(),
                               "description": "a Vietnamese mobile (also accepted with spaces, dots, dashes or "
                                              "brackets, or as 84…); opts in to SMS"}),
            "lang": nullable({"enum": ["vi", "en"], "description": "the language of the number's messages"})},
            ("service", "channel")),
        "OpenCounter": body({"services": nullable({"type": "array", "items": service, "minItems": 1, "uniqueItems": True,
                                                   "description": "the fields to serve; the counter's own if absent"})}),
        "TicketAction": body({"service": nullable({**service, "description": "transfer: the field to queue it in"}),
                              "counter": nullable(counter)}),
        "CheckInRequest": body({"token": {"type": "string", "pattern": TICKET_TOKEN, "maxLength": MAX_TOKEN}}, ("token",)),
        "KioskName": body({"name": nullable(text(NAME_MAX, description="shown on the admin page; printable"))}),
        "KioskCode": body({"code": {"type": "string", "pattern": ENROL_CODE, "maxLength": MAX_CODE}}, ("code",)),
        "OptIn": body({
            "channel": {"enum": ["sms", "push", "zalo"]},
            "phone": nullable({"type": "string", "pattern": phone_pattern()}),
            "subscription": nullable(ref("PushSubscription")),
            "ahead": nullable({"type": "integer", "minimum": 1, "maximum": 50, "description": "tell me N people ahead"}),
            "travel_minutes": nullable({"type": "number", "minimum": 0, "maximum": 600}),
            "lang": nullable({"enum": ["vi", "en"]})}, ("channel",)),
        # PushSubscription.toJSON(); anything else is dropped, never stored (hub.domain.push).
        "PushSubscription": body({
            "endpoint": {"type": "string", "pattern": endpoint_pattern(push), "maxLength": MAX_ENDPOINT},
            "expirationTime": {"type": ["number", "null"], "minimum": 0},
            "keys": body({"p256dh": {"type": "string", "pattern": "^[A-Za-z0-9_-]{87}=?$",
                                     "description": "an uncompressed P-256 point, base64url"},
                          "auth": {"type": "string", "pattern": "^[A-Za-z0-9_-]{22}={0,2}$",
                                   "description": "16 bytes, base64url"}}, ("p256dh", "auth"))},
            ("endpoint", "keys")),
        "Rating": body({"score": {"type": "integer", "minimum": 1, "maximum": 5},
                        "comment": nullable(text(500))}, ("score",)),
        "Anything": body({}),
        "Form": obj({}, additionalProperties={"type": "string"},
                    description="application/x-www-form-urlencoded fields, as the gateway posts them"),
        "Redrive": obj({"key": nullable(text(description="one dead letter's outbox key; absent: every dead letter"))}, (),
                       additionalProperties=False),
        # -- answers -------------------------------------------------------------------------------
        "Ticket": obj({
            "number": {"type": "string", "pattern": NUMBER}, "ticket": s, "branch": s, "branch_name": s,
            "service": s, "service_name": s, "service_name_en": s, "channel": {"enum": ["kiosk", "online"]},
            "priority": {"type": "boolean"}, "day": {"type": "string", "pattern": DATE},
            "state": {"enum": ["waiting", "called", "held", "completed", "skipped", "cancelled", "expired"]},
            "counter": opt_s, "issued_at": s, "called_at": opt_s, "checked_in": {"type": "boolean"},
            "held_until": opt_s, "position": {"type": ["integer", "null"], "minimum": 1},
            "people_ahead": {"type": ["integer", "null"], "minimum": 0}, "now_serving": serving, "eta": eta,
            "expected_call": {"type": ["object", "null"], "properties": {k: s for k in ("earliest", "likely", "latest")}},
            "travel_minutes": {"type": ["number", "null"]}, "leave_by": opt_s, "tracking_url": opt_s,
            "notifications": {"type": "object", "additionalProperties": obj({"ahead": {"type": ["integer", "null"]}})},
            "rated": {"type": "boolean"}, "noshows": {"type": "integer", "minimum": 0,
                                                     "description": "staff only: the holder's online no-shows"}},
            ["number", "ticket", "branch", "service", "channel", "priority", "day", "state", "issued_at", "position",
             "people_ahead", "eta"]),
        "IssuedTicket": obj({
            "number": {"type": "string", "pattern": NUMBER}, "service": s,
            "token": {"type": "string", "pattern": TICKET_TOKEN, "description": "the holder's key: keep it secret"},
            "tracking_url": s, "issued_at": s, "position": {"type": "integer", "minimum": 1}, "eta": eta, "ticket": s,
            "branch": s, "day": {"type": "string", "pattern": DATE}, "channel": {"enum": ["kiosk", "online"]},
            "priority": {"type": "boolean"}, "people_ahead": {"type": "integer", "minimum": 0}},
            ["number", "service", "token", "tracking_url", "issued_at", "position", "eta", "branch", "day"]),
        "StaffTicket": obj({"ticket": ref("Ticket"), "completed": {"type": "array", "items": s}}, ["ticket"]),
        "Counter": obj({"counter": obj({"id": s, "open": {"type": "boolean"}, "services": {"type": "array", "items": s},
                                        "current": opt_s}, ["id", "open", "services", "current"])}, ["counter"]),
        "Branches": obj({"branches": {"type": "array", "items": ref("BranchStatus")}}, ["branches"]),
        "BranchStatus": obj({
            "id": s, "name": s, "name_en": s, "address": s, "day": {"type": "string", "pattern": DATE}, "now": s,
            "seq": {"type": "integer", "minimum": 0}, "working_day": {"type": "boolean"},
            "hours": {"type": "object", "additionalProperties": {"type": "string", "pattern": CLOCK}},
            "issuing": obj({"kiosk": {"type": "boolean"}, "online": {"type": "boolean"}}, ["kiosk", "online"]),
            "waiting": {"type": "integer", "minimum": 0}, "now_serving": serving,
            "services": {"type": "array", "items": obj({
                "id": s, "name": s, "name_en": s, "waiting": {"type": "integer", "minimum": 0}, "now_serving": serving,
                "expected_wait": maybe_eta, "numbers_left": {"type": "integer", "minimum": 0}, "daily_cap": i,
                "range": {"type": "array", "items": i, "minItems": 2, "maxItems": 2}},
                ["id", "name", "waiting", "expected_wait", "numbers_left"])},
            "counters": {"type": "array", "items": obj({"id": s, "open": {"type": "boolean"},
                                                        "services": {"type": "array", "items": s},
                                                        "current": {"type": ["object", "null"]}},
                                                       ["id", "open", "services"])}},
            ["id", "name", "day", "seq", "waiting", "services", "counters"]),
        "KioskDevice": kiosk,
        "KioskDevices": obj({"devices": {"type": "array", "items": kiosk}}, ["devices"]),
        "KioskEnrolment": {**kiosk, "properties": {**kiosk["properties"], "enrol_code": s, "enrol_url": s,
                                                   "expires_at": s, "enrol_qr": s},
                           "required": [*kiosk["required"], "enrol_code", "enrol_url", "expires_at", "enrol_qr"]},
        "KioskToken": obj({"token": {"type": "string", "pattern": BEARER}, "device": {"type": "string", "pattern": DEVICE},
                           "name": s, "branch": s}, ["token", "device", "name", "branch"]),
        "KioskMe": obj({"kind": {"enum": ["kiosk", "staff"]}, "branch": s, "counter": opt_s,
                        **{k: v for k, v in kiosk["properties"].items()}}, ["kind", "branch"]),
        "Announcement": obj({"number": s, "counter": s, "text": s, "subtitle": s, "subtitle_en": s, "chime": s,
                             "clips": {"type": "array", "items": s}},
                            ["number", "counter", "text", "subtitle", "subtitle_en", "chime", "clips"]),
        "CitizenToken": obj({"token": {"type": "string", "pattern": BEARER}, "expires_in": i}, ["token", "expires_in"]),
        "PushKey": obj({"key": {"type": "string", "pattern": "^[A-Za-z0-9_-]{87}$"}}, ["key"]),
        "Redriven": obj({"redriven": {"type": "integer", "minimum": 0}, "more": {"type": "boolean"}}, ["redriven", "more"]),
        "Report": obj({"ok": {"const": True}, "recorded": {"type": "boolean"}}, ["ok", "recorded"]),
        "Health": obj({"status": {"const": "ok"}}, ["status"]),
        "Ready": obj({"status": {"enum": ["ready", "not_ready", "starting"]}, "store": s, "broker": s}, ["status"]),
        # One Server-Sent Event, as a client reads it (OpenAPI 3.1: the schema of a text/event-stream is per event).
        "FeedEvent": obj({"data": {"type": "string", "contentMediaType": "application/json",
                                   "description": "one feed message (docs/feeds.md), or the reason of a close"},
                          "event": {"enum": ["message", "close"]}, "id": {"type": "string", "pattern": "^[0-9]+$"}},
                         ["data", "event"]),
    }


def parameters(centre: Centre) -> dict[str, Schema]:
    def path(name: str, schema: Schema, description: str = "") -> Schema:
        p = {"name": name, "in": "path", "required": True, "schema": schema}
        return {**p, "description": description} if description else p

    token = {"type": "string", "pattern": TICKET_TOKEN, "maxLength": MAX_TOKEN}
    return {
        "branch": path("branch", {"enum": sorted(centre.branches)}, "a branch of this hub (404 branch_not_found otherwise)"),
        "counter": path("counter", {"enum": sorted({c for b in centre.branches.values() for c in b.counters})},
                        "a counter of the branch (404 counter_not_found otherwise)"),
        "device": path("device", {"type": "string", "pattern": DEVICE}),
        "number": path("number", {"type": "string", "pattern": NUMBER}, "a number issued today"),
        "action": path("action", {"enum": ["recall", "complete", "skip", "transfer", "cancel", "check-in"]}),
        "token": path("token", token, "the ticket's token: the holder's key, from the issue answer or the QR code"),
        "channel": path("channel", {"enum": ["sms", "push", "zalo"]}),
        "announce_number": {"name": "number", "in": "query", "required": True,
                            "schema": {"type": "string", "pattern": "^[0-9]{1,4}$"}, "description": "the called number"},
        "announce_counter": {"name": "counter", "in": "query", "required": True,
                             "schema": {"type": "string", "pattern": "^[0-9]{1,4}$"}, "description": "the counter"},
        "travel": {"name": "travel_minutes", "in": "query", "required": False,
                   "schema": {"type": "number", "minimum": 0, "maximum": 600},
                   "description": "the holder's travel time: leave_by is worked out from it"},
        "page_travel": {"name": "travel_minutes", "in": "query", "required": False,
                        "schema": {"type": "string"}, "description": "0–600 minutes; anything else is ignored"},
        "lang": {"name": "lang", "in": "query", "required": False, "schema": {"type": "string"},
                 "description": "en for English; anything else is Vietnamese"},
        "since": {"name": "since", "in": "query", "required": False, "schema": {"type": "string", "pattern": SEQ},
                  "description": "the last seq the client processed: resume after it (a snapshot if no longer "
                                 "kept); empty is the same as absent"},
        "last_event_id": {"name": "Last-Event-ID", "in": "header", "required": False,
                          "schema": {"type": "string", "pattern": SEQ},
                          "description": "the id of the last event a browser's EventSource saw, sent on reconnecting; "
                                         "?since= wins"},
        "epoch": {"name": "epoch", "in": "query", "required": False, "schema": {"type": "string"},
                  "description": "the epoch of that seq; another epoch means a snapshot"},
        "IdempotencyKey": {"name": "Idempotency-Key", "in": "header", "required": False,
                           "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY,
                                      "maxLength": MAX_IDEMPOTENCY_KEY},
                           "description": "A repeat with the same key returns the first answer and changes nothing "
                                          "(409 idempotency_key_reused for another request under the same key)."},
        **{name: {"name": name, "in": "query", "required": name == "SMSID",
                  "schema": {"type": "string", "minLength": 1} if name == "SMSID" else
                  {"type": "string", "pattern": "^[0-9]*$"} if name in ("SendSuccess", "SendFailed") else
                  {"type": "string"}}
           for name in ("SMSID", "RequestId", "SendStatus", "SendSuccess", "SendFailed", "error_info")},
    }


CHANGES_NOTE = f"at most {MAX_CHANGES} changes (opt-ins, opt-outs, a rating) a minute per ticket (429 too_many_changes)"
