"""The OpenAPI 3.1 document of the HTTP API, written out by hand so that it says what the contract says."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hub import __version__

_ERR = {"$ref": "#/components/responses/Error"}
Security = list[dict[str, list[str]]]       # OpenAPI security requirements: scheme → scopes
_STAFF: Security = [{"staff": []}]
_KIOSK: Security = [{"kiosk": []}, {"staff": []}]


def _op(summary: str, *, ok: int = 200, ok_schema: str | None = None, body: str | None = None,
        security: Security | None = None, idem: bool = False, errors: Iterable[int] = (401, 403, 404, 409, 422),
        params: Iterable[str] = (), desc: str = "") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {str(ok): {"description": "OK", "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{ok_schema}"} if ok_schema else {"type": "object"}}}}}}
    if desc:
        op["description"] = desc
    for code in errors:
        op["responses"][str(code)] = _ERR
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if security is not None:
        op["security"] = security
    parameters = [{"$ref": f"#/components/parameters/{p}"} for p in params]
    if idem:
        parameters.append({"$ref": "#/components/parameters/IdempotencyKey"})
    if parameters:
        op["parameters"] = parameters
    return op


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "queuecast hub API", "version": __version__,
                 "description": "Queue numbers of Hanoi's Public Administrative Service Centre: issuing, "
                                "counters, live status and tickets. Errors are always "
                                "{\"error\": {\"code\", \"message\"}} with a 4xx status."},
        "paths": {
            "/api/branches": {"get": _op("Every branch with live status", errors=())},
            "/api/branches/{branch}": {"get": _op("One branch: per field waiting, now serving, expected wait, numbers left",
                                                  ok_schema="BranchStatus", params=["branch"], errors=(404,))},
            "/api/branches/{branch}/tickets": {"post": _op(
                "Issue a number", ok=201, ok_schema="IssuedTicket", body="IssueRequest", params=["branch"],
                security=[{"kiosk": []}, {"staff": []}, {"citizen": []}, {}], idem=True,
                errors=(400, 401, 403, 404, 409, 413, 422, 429),
                desc="Kiosk numbers come from an enrolled kiosk device of the branch (its kiosk token; paced, "
                     "429 kiosk_pace with retry_after), from the branch's staff, or, without a token, only from "
                     "the branch's lobby network if its policy lists one (401/403 kiosk_device_required "
                     "otherwise; 401 device_revoked or device_not_enrolled for a device that may no longer "
                     "issue); online numbers need a citizen token. Refusals: issuing_closed, daily_cap_reached "
                     "(with next_working_day), field_limit_reached, daily_limit_reached, online_booking_suspended.")},
            "/api/branches/{branch}/check-in": {"post": _op(
                "Check in an online holder on arrival (QR scanned at the kiosk)", body="CheckInRequest",
                params=["branch"], security=_KIOSK)},
            "/api/branches/{branch}/kiosks": {
                "get": _op("The branch's kiosk devices: name, state, enrolled, last issue, issued today",
                           ok_schema="KioskDevices", params=["branch"], security=_STAFF, errors=(401, 403, 404),
                           desc="The branch's staff token without a counter (403 manager_only otherwise)."),
                "post": _op("Enrol a kiosk device: a one-time enrolment code and link (and its QR code as SVG)",
                            ok=201, ok_schema="KioskEnrolment", body="KioskName", params=["branch"], security=_STAFF,
                            errors=(400, 401, 403, 404, 413, 422),
                            desc="The kiosk opens the link (/kiosk/{branch}#enrol=CODE) or is given the code, and "
                                 "exchanges it once for its device token (POST .../kiosks/enrol); the code expires "
                                 "after an hour."),
            },
            "/api/branches/{branch}/kiosks/enrol": {"post": _op(
                "The kiosk exchanges its one-time enrolment code for its device token", body="KioskCode",
                ok_schema="KioskToken", params=["branch"], security=[{}], idem=True, errors=(400, 404, 409, 413, 422),
                desc="404 enrolment_code_not_found, 409 enrolment_code_used, enrolment_code_expired, device_revoked "
                     "or wrong_branch.")},
            "/api/branches/{branch}/kiosks/me": {"get": _op(
                "What a kiosk (or staff) token stands for at this branch, if it may still issue",
                params=["branch"], security=_KIOSK, errors=(401, 403, 404))},
            "/api/branches/{branch}/kiosks/{device}": {"delete": _op(
                "Revoke a kiosk device, for good, in every hub process (a repeat changes nothing)",
                ok_schema="KioskDevice", params=["branch", "device"], security=_STAFF, errors=(401, 403, 404))},
            "/api/branches/{branch}/counters/{counter}/open": {"post": _op(
                "Open a counter (or change its fields)", body="OpenCounter", params=["branch", "counter"],
                security=_STAFF, idem=True)},
            "/api/branches/{branch}/counters/{counter}/close": {"post": _op(
                "Close a counter", params=["branch", "counter"], security=_STAFF, idem=True)},
            "/api/branches/{branch}/counters/{counter}/call-next": {"post": _op(
                "Call the earliest-registered waiting number among the counter's fields, priority first",
                ok_schema="CalledTicket", params=["branch", "counter"], security=_STAFF, idem=True,
                desc="A counter still serving a number completes it first. 409 queue_empty when no one waits.")},
            "/api/branches/{branch}/tickets/{number}/{action}": {"post": _op(
                "recall, complete, skip, transfer (body {\"service\"}), cancel or check-in one number",
                body="TicketAction", params=["branch", "number", "action"], security=_STAFF, idem=True)},
            "/api/tickets/{token}": {
                "get": _op("The holder's ticket: state, position, people ahead, ETA, leave_by",
                           ok_schema="Ticket", params=["token", "travel"], errors=(404, 422)),
                "delete": _op("Give the number back", ok_schema="Ticket", params=["token"], errors=(404, 409)),
            },
            "/t/{token}": {"get": _op("The holder's phone page (HTML); its JSON twin is /api/tickets/{token}",
                                      params=["token"], errors=(404,))},
            "/ws/branches/{branch}": {"get": _op(
                "Board feed over WebSocket (upgrade): a snapshot, or a resume marker and exactly the missed "
                "events, then every event as it happens", params=["branch", "since", "epoch"], errors=(),
                desc="Close codes: 4008 too slow (resume), 4009 resync, 4404 unknown branch, 4400 bad since.")},
            "/sse/branches/{branch}": {"get": _op("Board feed as Server-Sent Events (Last-Event-ID or ?since= resumes)",
                                                  params=["branch", "since", "epoch"], errors=(400, 404))},
            "/ws/tickets/{token}": {"get": _op("One ticket's feed over WebSocket: every branch event with the ticket view",
                                               params=["token", "since", "epoch"], errors=())},
            "/sse/tickets/{token}": {"get": _op("One ticket's feed as Server-Sent Events", params=["token", "since", "epoch"],
                                                errors=(400, 404))},
            "/metrics": {"get": _op("Prometheus metrics (text format)", errors=())},
            "/api/tickets/{token}/notifications": {"post": _op(
                "Opt in to SMS, web push or Zalo for this ticket (a phone given at issue already opts in to SMS)",
                ok_schema="Ticket", body="OptIn", params=["token"], errors=(400, 404, 409, 422, 429),
                desc="Asking again for what is kept changes nothing (200, no event). 429 too_many_changes past "
                     "10 changes (opt-in, opt-out, rating) a minute per ticket; 422 unknown_push_service for "
                     "an endpoint off QUEUECAST_PUSH_HOSTS.")},
            "/api/tickets/{token}/notifications/{channel}": {"delete": _op(
                "Turn one channel off (sms, push or zalo); nothing to turn off changes nothing",
                ok_schema="Ticket", params=["token", "channel"], errors=(404, 422, 429))},
            "/api/push/key": {"get": _op(
                "The VAPID public key (applicationServerKey, base64url) a browser subscribes to web push with",
                errors=(404,), desc="404 push_unavailable when this hub has no VAPID key (a redis:// store "
                                    "without QUEUECAST_VAPID_PRIVATE_KEY).")},
            "/api/outbox/redrive": {"post": _op(
                "Put the branch's dead letters back in the notifier's queue: one (body {\"key\"}) or all (body {})",
                security=_STAFF, errors=(400, 401, 403, 404, 409, 422),
                desc="The branch is the staff token's. Answer {\"redriven\": N, \"more\": bool}.")},
            "/hooks/esms": {"get": _op(
                "eSMS delivery report (its CallbackUrl): SMSID, RequestId, SendStatus, SendSuccess, ...",
                errors=(400,), desc="200 once read, whether or not it matched a message; sent → delivered only.")},
            "/hooks/twilio": {"post": _op(
                "Twilio status callback (form), signed with X-Twilio-Signature", errors=(400, 403, 413),
                desc="403 when the signature does not match QUEUECAST_SMS_SECRET over QUEUECAST_PUBLIC_URL/hooks/twilio.")},
            "/api/tickets/{token}/rating": {"post": _op(
                "Rate the service (1–5, optional comment), once, after it is completed",
                ok_schema="Ticket", body="Rating", params=["token"], errors=(400, 404, 409, 422, 429))},
            "/api/announcement": {"get": _op(
                "What the lobby says when a number is called: spoken text, subtitles (vi, en), chime and clips",
                ok_schema="Announcement", params=["announce_number", "announce_counter"], errors=(422,),
                desc="422 invalid_announcement unless number and counter are whole numbers in range. "
                     "Cacheable for a day: the same call always reads the same.")},
            "/demo/citizen-token": {"post": _op(
                "A citizen token for a made-up valid CCCD, to try online numbers (under `queuecast demo` only)",
                ok=201, ok_schema="CitizenToken", errors=(404,),
                desc="404 not_found on any hub not started by `queuecast demo`.")},
            "/healthz": {"get": _op("Liveness", errors=())},
            "/readyz": {"get": _op("Readiness: store and broker reachable", errors=(503,))},
        },
        "components": {
            "securitySchemes": {
                "staff": {"type": "http", "scheme": "bearer", "description": "queuecast token staff --branch B [--counter C]"},
                "citizen": {"type": "http", "scheme": "bearer", "description": "queuecast token citizen --id CCCD"},
                "kiosk": {"type": "http", "scheme": "bearer",
                          "description": "a kiosk device's token: queuecast token kiosk --branch B, or an enrolment "
                                         "link from the admin page"},
            },
            "parameters": {
                "branch": {"name": "branch", "in": "path", "required": True, "schema": {"type": "string"}},
                "counter": {"name": "counter", "in": "path", "required": True, "schema": {"type": "string"}},
                "device": {"name": "device", "in": "path", "required": True,
                           "schema": {"type": "string", "pattern": "^k[0-9a-f]{10}$"}},
                "number": {"name": "number", "in": "path", "required": True, "schema": {"type": "string"}},
                "action": {"name": "action", "in": "path", "required": True, "schema": {
                    "enum": ["recall", "complete", "skip", "transfer", "cancel", "check-in"]}},
                "token": {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}},
                "channel": {"name": "channel", "in": "path", "required": True, "schema": {"enum": ["sms", "push", "zalo"]}},
                "announce_number": {"name": "number", "in": "query", "required": True, "schema": {"type": "string"},
                                    "description": "The called number, a whole number from 0 to 9999."},
                "announce_counter": {"name": "counter", "in": "query", "required": True, "schema": {"type": "string"},
                                     "description": "The counter, a whole number from 0 to 9999."},
                "travel": {"name": "travel_minutes", "in": "query", "required": False,
                           "schema": {"type": "number", "minimum": 0, "maximum": 600}},
                "since": {"name": "since", "in": "query", "required": False, "schema": {"type": "integer"},
                          "description": "The last seq the client processed: resume after it."},
                "epoch": {"name": "epoch", "in": "query", "required": False, "schema": {"type": "string"},
                          "description": "The epoch of that seq; another epoch means a snapshot."},
                "IdempotencyKey": {"name": "Idempotency-Key", "in": "header", "required": False,
                                   "schema": {"type": "string", "maxLength": 200},
                                   "description": "A repeat with the same key returns the first answer and changes nothing."},
            },
            "responses": {"Error": {"description": "Error", "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": _schemas(),
        },
    }


def _obj(props: dict[str, Any], required: Iterable[str] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(required)}


_ETA = {"type": ["object", "null"], "properties": {k: {"type": "number"} for k in ("p10", "p50", "p90")}}
_S = {"type": "string"}


_LANG = {"enum": ["vi", "en"], "description": "the language of the number's messages (default vi)"}
_OPT_S = {"type": ["string", "null"]}
_KIOSK_DEVICE = _obj({"device": _S, "name": _S, "state": {"enum": ["pending", "active", "revoked"]},
                      "enrolled_at": _S, "by": _S, "revoked_at": _OPT_S, "last_issue": _OPT_S,
                      "issued_today": {"type": "integer"}},
                     ["device", "name", "state", "enrolled_at", "issued_today"])


def _schemas() -> dict[str, Any]:
    return {
        "Error": _obj({"error": _obj({"code": _S, "message": _S, "message_vi": _S}, ["code", "message"])}, ["error"]),
        "IssueRequest": _obj({"service": _S, "channel": {"enum": ["kiosk", "online"]}, "priority": {"type": "boolean"},
                              "phone": _S, "lang": _LANG}, ["service", "channel"]),
        "IssuedTicket": _obj({"number": _S, "service": _S, "token": _S, "tracking_url": _S, "issued_at": _S,
                              "position": {"type": "integer"}, "eta": _ETA, "ticket": _S, "day": _S},
                             ["number", "service", "token", "tracking_url", "issued_at", "position", "eta"]),
        "OpenCounter": _obj({"services": {"type": "array", "items": _S}}),
        "TicketAction": _obj({"service": _S, "counter": _S}),
        "CheckInRequest": _obj({"token": _S}, ["token"]),
        "KioskName": _obj({"name": {"type": "string", "maxLength": 60}}),
        "KioskCode": _obj({"code": {"type": "string", "maxLength": 200}}, ["code"]),
        "KioskDevice": _KIOSK_DEVICE,
        "KioskDevices": _obj({"devices": {"type": "array", "items": _KIOSK_DEVICE}}, ["devices"]),
        "KioskEnrolment": {**_KIOSK_DEVICE, "properties": {
            **_KIOSK_DEVICE["properties"], "enrol_code": _S, "enrol_url": _S, "expires_at": _S, "enrol_qr": _S}},
        "KioskToken": _obj({"token": _S, "device": _S, "name": _S, "branch": _S}, ["token", "device", "name", "branch"]),
        "OptIn": _obj({"channel": {"enum": ["sms", "push", "zalo"]}, "phone": _S,
                       "subscription": {"$ref": "#/components/schemas/PushSubscription"},
                       "ahead": {"type": "integer", "minimum": 1, "maximum": 50},
                       "travel_minutes": {"type": "number", "minimum": 0, "maximum": 600}, "lang": _LANG},
                      ["channel"]),
        # PushSubscription.toJSON(); other fields are dropped, never stored (hub.domain.push).
        "PushSubscription": _obj({"endpoint": {"type": "string", "pattern": "^https://", "maxLength": 1024},
                                  "expirationTime": {"type": ["number", "null"], "minimum": 0},
                                  "keys": _obj({"p256dh": {"type": "string", "pattern": "^[A-Za-z0-9_-]+={0,2}$",
                                                           "minLength": 87, "maxLength": 88},
                                                "auth": {"type": "string", "pattern": "^[A-Za-z0-9_-]+={0,2}$",
                                                         "minLength": 22, "maxLength": 24}}, ["p256dh", "auth"])},
                                 ["endpoint", "keys"]),
        "Rating": _obj({"score": {"type": "integer", "minimum": 1, "maximum": 5}, "comment": _S}, ["score"]),
        "Announcement": _obj({"number": _S, "counter": _S, "text": _S, "subtitle": _S, "subtitle_en": _S,
                              "chime": _S, "clips": {"type": "array", "items": _S}},
                             ["number", "counter", "text", "subtitle", "subtitle_en", "chime", "clips"]),
        "CitizenToken": _obj({"token": _S, "expires_in": {"type": "integer"}}, ["token", "expires_in"]),
        "Ticket": _obj({"number": _S, "service": _S, "state": {"enum": ["waiting", "called", "held", "completed",
                                                                        "skipped", "cancelled", "expired"]},
                        "position": {"type": ["integer", "null"]}, "people_ahead": {"type": ["integer", "null"]},
                        "now_serving": {"type": "array"}, "eta": _ETA, "leave_by": {"type": ["string", "null"]},
                        "counter": {"type": ["string", "null"]}}),
        "CalledTicket": _obj({"ticket": {"$ref": "#/components/schemas/Ticket"},
                              "completed": {"type": "array", "items": _S}}, ["ticket"]),
        "BranchStatus": _obj({"id": _S, "name": _S, "seq": {"type": "integer"}, "waiting": {"type": "integer"},
                              "services": {"type": "array", "items": _obj({
                                  "id": _S, "name": _S, "waiting": {"type": "integer"}, "now_serving": {"type": "array"},
                                  "expected_wait": _ETA, "numbers_left": {"type": "integer"}})},
                              "counters": {"type": "array"}}),
    }
