"""The OpenAPI 3.1 document of the hub (/openapi.json, and /api for people), written by hand so
that it says what the hub does: every route the API serves (the WebSocket feeds as such), every
status each can answer with the error codes behind it, every content type, and the patterns and
limits of what goes in (hub.web.openapi_schemas). OpenAPI links lead from a new number's token to
what its holder can do with it, and from the branch list to the branches' operations, so that a
client (or a fuzzer) can follow the flows. tests/test_schemathesis.py holds the hub to it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from hub import __version__
from hub.domain.config import Centre
from hub.settings import Settings
from hub.web import openapi_schemas as parts
from hub.web.openapi_schemas import CHANGES_NOTE, ref

Responses = dict[int, Any]
Security = list[dict[str, list[str]]]       # OpenAPI security requirements: scheme → scopes
Codes = Mapping[int, Iterable[str]]         # status → the error codes answered with it

STAFF: Security = [{"staff": []}]
KIOSK_OR_STAFF: Security = [{"kiosk": []}, {"staff": []}]
NONE: Security = []                          # the token in the path, or nothing, is the authority

# Errors that come with a kind of request, whatever it asks for.
BODY: Codes = {400: ("malformed_json", "client_disconnected"), 408: ("request_timeout",),
               413: ("body_too_large",), 415: ("unsupported_media_type",),
               422: ("invalid_text", "missing_field", "invalid_field")}
BEARER: Codes = {401: ("token_required", "invalid_token")}
STAFF_ONLY: Codes = {**BEARER, 403: ("staff_only", "wrong_branch", "wrong_counter")}
BRANCH: Codes = {404: ("branch_not_found", "not_found")}
IDEM: Codes = {409: ("idempotency_key_reused",), 422: ("invalid_idempotency_key",)}
STORE: Codes = {409: ("busy",), 503: ("store_unavailable",)}     # hub.service.pipeline: every command
TICKET: Codes = {404: ("ticket_not_found", "branch_not_found", "not_found")}


def merge(*tables: Codes) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for table in tables:
        for status, codes in table.items():
            out.setdefault(status, [])
            out[status] += [c for c in codes if c not in out[status]]
    return out


def error(status: int, codes: Iterable[str]) -> dict[str, Any]:
    """An error answer: the contract's shape, its code one of `codes`."""
    codes = list(codes)
    schema = {"allOf": [ref("Error"), {"properties": {"error": {"properties": {"code": {"enum": codes}}}}}]}
    out: dict[str, Any] = {"description": f"{HTTPStatus(status).phrase}: {', '.join(codes)}",
                           "content": {"application/json": {"schema": schema}}}
    headers = {401: {"WWW-Authenticate": {"required": True, "schema": {"const": "Bearer"}}},
               408: {"Connection": {"required": True, "schema": {"const": "close"}}},
               429: {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
               503: {"Retry-After": {"required": True, "schema": {"type": "string", "pattern": "^[0-9]+$"}}}}
    if status in headers:
        out["headers"] = {name: {"description": name, **h} for name, h in headers[status].items()}
    return out


def json(schema: str, description: str = "OK", links: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": ref(schema)}}}
    if links:
        out["links"] = links
    return out


def op(op_id: str, summary: str, ok: Responses, *, errors: Codes | None = None, security: Security | None = None,
       params: Iterable[str] = (), body: str | None = None, body_required: bool = True, desc: str = "",
       form: bool = False) -> dict[str, Any]:
    o: dict[str, Any] = {"operationId": op_id, "summary": summary}
    if desc:
        o["description"] = desc
    if security is not None:
        o["security"] = security
    if params:
        o["parameters"] = [{"$ref": f"#/components/parameters/{p}"} for p in params]
    if body:
        media = "application/x-www-form-urlencoded" if form else "application/json"
        o["requestBody"] = {"required": body_required, "content": {media: {"schema": ref(body)}}}
    o["responses"] = {**{str(k): v for k, v in ok.items()},
                      **{str(status): error(status, codes) for status, codes in sorted((errors or {}).items())}}
    return o


def link(op_id: str, params: dict[str, str] | None = None, body: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"operationId": op_id}
    if params:
        out["parameters"] = params
    if body:
        out["requestBody"] = body
    return out


def ticket_links(token: str) -> dict[str, Any]:
    """What a holder can do with a ticket token found at `token` (a runtime expression)."""
    t = {"token": token}
    return {"GetTicket": link("getTicket", t), "GiveBack": link("giveBack", t), "OptIn": link("optIn", t),
            "OptOut": link("optOut", t), "Rate": link("rate", t), "TicketEvents": link("ticketEvents", t),
            "TicketPage": link("ticketPage", t)}


def branch_links(at: str) -> dict[str, Any]:
    """The branch's operations, for the branch whose view is at the JSON pointer `at` of the answer:
    its id, its first counter, and a kiosk number of its first field."""
    b = {"branch": f"$response.body#{at}/id"}
    bc = {**b, "counter": f"$response.body#{at}/counters/0/id"}
    kiosk_number = {"service": f"$response.body#{at}/services/0/id", "channel": "kiosk"}
    return {"GetBranch": link("getBranch", b), "Issue": link("issueTicket", b, kiosk_number),
            "BoardEvents": link("boardEvents", b), "OpenCounter": link("openCounter", bc),
            "CloseCounter": link("closeCounter", bc), "CallNext": link("callNext", bc),
            "Kiosks": link("listKiosks", b), "EnrolKiosk": link("enrolKiosk", b), "KioskMe": link("kioskMe", b)}


def document(centre: Centre, settings: Settings) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "queuecast hub API", "version": __version__,
                 "description": "Queue numbers of Hanoi's Public Administrative Service Centre: issuing, counters, "
                                "live status, tickets and their feeds. Errors are always {\"error\": {\"code\", "
                                "\"message\", \"message_vi\", ...}} with a 4xx status (5xx only for faults of the hub "
                                "itself). Request bodies are JSON (application/json, at most "
                                f"{settings.max_body} bytes, sent within {settings.request_timeout} s); text in them "
                                "holds no control characters. Branches, counters and fields are this hub's. A method a "
                                "path does not take is answered 405 method_not_allowed, with Allow."},
        "paths": {**_branch_paths(), **_holder_paths(), **_feed_paths(), **_other_paths()},
        "components": {
            "securitySchemes": {
                "staff": {"type": "http", "scheme": "bearer",
                          "description": "queuecast token staff --branch B [--counter C]: that branch's staff; "
                                         "bound to a counter, only that counter and the numbers it called"},
                "citizen": {"type": "http", "scheme": "bearer",
                            "description": "queuecast token citizen --id CCCD: a citizen whose identity VNeID verified"},
                "kiosk": {"type": "http", "scheme": "bearer",
                          "description": "an enrolled kiosk device's token (queuecast token kiosk --branch B, or an "
                                         "enrolment code from the admin page exchanged at POST .../kiosks/enrol)"},
            },
            "parameters": parts.parameters(centre),
            "schemas": parts.schemas(centre, settings.push_destinations),
        },
    }


def _branch_paths() -> dict[str, Any]:
    number_links = {"Act": link("ticketAction", {"branch": "$request.path.branch", "number": "$response.body#/number"}),
                    "CheckIn": link("checkIn", {"branch": "$request.path.branch"}, {"token": "$response.body#/token"}),
                    **ticket_links("$response.body#/token")}
    called_links = {"Act": link("ticketAction", {"branch": "$request.path.branch",
                                                 "number": "$response.body#/ticket/number"})}
    return {
        "/api/branches": {"get": op("listBranches", "Every branch with its live status", {200: json(
            "Branches", links=branch_links("/branches/0"))}, security=NONE)},
        "/api/branches/{branch}": {"get": op(
            "getBranch", "One branch: per field waiting, now serving, expected wait, numbers left",
            {200: json("BranchStatus", links=branch_links(""))},
            params=["branch"], errors=BRANCH, security=NONE)},
        "/api/branches/{branch}/tickets": {"post": op(
            "issueTicket", "Issue a number", {201: json("IssuedTicket", "Created: the number and its holder's token",
                                                        links=number_links)},
            body="IssueRequest", params=["branch", "IdempotencyKey"],
            security=[{"kiosk": []}, {"staff": []}, {"citizen": []}, {}],
            errors=merge(BODY, BEARER, BRANCH, IDEM, STORE, {
                401: ("citizen_token_required", "kiosk_device_required", "device_revoked", "device_not_enrolled"),
                403: ("kiosk_device_required", "priority_not_allowed", "staff_only", "wrong_branch", "wrong_counter"),
                409: ("issuing_closed", "daily_cap_reached", "field_limit_reached", "daily_limit_reached",
                      "online_booking_suspended"),
                422: ("unknown_service", "invalid_channel", "invalid_lang", "invalid_phone", "invalid_citizen_id"),
                429: ("rate_limited", "kiosk_pace")}),
            desc="Kiosk numbers come from an enrolled kiosk device of the branch (its kiosk token; paced: 429 "
                 "kiosk_pace), from the branch's staff, or, without a token, only from the branch's lobby network "
                 "if its policy lists one (401 kiosk_device_required otherwise, 403 with a citizen's token). Online "
                 "numbers need a citizen token; priority is only a kiosk device's or staff's to give. 422 "
                 "unknown_service also for a field this branch does not offer. Without a device or staff token, "
                 "numbers are rate-limited per client address (429 rate_limited).")},
        "/api/branches/{branch}/check-in": {"post": op(
            "checkIn", "Check in an online holder on arrival (their QR scanned at the kiosk)", {200: json("Ticket")},
            body="CheckInRequest", params=["branch"], security=KIOSK_OR_STAFF,
            errors=merge(BODY, STAFF_ONLY, TICKET, STORE, {
                401: ("device_revoked", "device_not_enrolled"),
                409: ("wrong_branch", "already_checked_in", "invalid_state", "wrong_day")}))},
        "/api/branches/{branch}/kiosks": {
            "get": op("listKiosks", "The branch's kiosk devices: name, state, enrolled, last issue, issued today",
                      {200: json("KioskDevices")}, params=["branch"], security=STAFF,
                      errors=merge(STAFF_ONLY, BRANCH, {403: ("manager_only",)}),
                      desc="The branch's staff token without a counter (403 manager_only otherwise)."),
            "post": op("enrolKiosk", "Enrol a kiosk device: a one-time enrolment code and link (and its QR code)",
                       {201: json("KioskEnrolment", "Created: the pending device and its code", links={
                           "Claim": link("claimKiosk", {"branch": "$request.path.branch"},
                                         {"code": "$response.body#/enrol_code"}),
                           "Revoke": link("revokeKiosk", {"branch": "$request.path.branch",
                                                          "device": "$response.body#/device"})})},
                       body="KioskName", body_required=False, params=["branch"], security=STAFF,
                       errors=merge(BODY, STAFF_ONLY, BRANCH, STORE, {403: ("manager_only",),
                                                                      409: ("device_exists",), 422: ("invalid_name",)}),
                       desc="The kiosk opens the link (/kiosk/{branch}#enrol=CODE) or is given the code, and "
                            "exchanges it once for its device token; the code expires after an hour. 422 "
                            "invalid_name for a name that is not printable text."),
        },
        "/api/branches/{branch}/kiosks/enrol": {"post": op(
            "claimKiosk", "The kiosk exchanges its one-time enrolment code for its device token",
            {200: json("KioskToken", links={"Me": link("kioskMe", {"branch": "$request.path.branch"})})},
            body="KioskCode", params=["branch", "IdempotencyKey"], security=NONE,
            errors=merge(BODY, BRANCH, IDEM, STORE, {
                404: ("enrolment_code_not_found",),
                409: ("enrolment_code_used", "enrolment_code_expired", "device_revoked", "wrong_branch")}))},
        "/api/branches/{branch}/kiosks/me": {"get": op(
            "kioskMe", "What a kiosk (or staff) token stands for at this branch, if it may still issue",
            {200: json("KioskMe")}, params=["branch"], security=KIOSK_OR_STAFF,
            errors=merge(STAFF_ONLY, BRANCH, {401: ("device_revoked", "device_not_enrolled"),
                                              403: ("kiosk_device_required",)}))},
        "/api/branches/{branch}/kiosks/{device}": {"delete": op(
            "revokeKiosk", "Revoke a kiosk device, for good, in every hub process (a repeat changes nothing)",
            {200: json("KioskDevice")}, params=["branch", "device"], security=STAFF,
            errors=merge(STAFF_ONLY, BRANCH, STORE, {403: ("manager_only",), 404: ("device_not_found",)}))},
        "/api/branches/{branch}/counters/{counter}/open": {"post": op(
            "openCounter", "Open a counter (or change its fields)",
            {200: json("Counter", links={"CallNext": link("callNext", {"branch": "$request.path.branch",
                                                                       "counter": "$request.path.counter"})})},
            body="OpenCounter", body_required=False, params=["branch", "counter", "IdempotencyKey"], security=STAFF,
            errors=merge(BODY, STAFF_ONLY, BRANCH, IDEM, STORE, {404: ("counter_not_found",),
                                                                 422: ("unknown_service", "invalid_services")}),
            desc="422 unknown_service also for a field this branch does not offer.")},
        "/api/branches/{branch}/counters/{counter}/close": {"post": op(
            "closeCounter", "Close a counter (a break, the end of the day)", {200: json("Counter")},
            body="Anything", body_required=False, params=["branch", "counter", "IdempotencyKey"], security=STAFF,
            errors=merge(BODY, STAFF_ONLY, BRANCH, IDEM, STORE, {404: ("counter_not_found",), 409: ("counter_busy",)}),
            desc="409 counter_busy while it serves a number: complete, skip or transfer it first.")},
        "/api/branches/{branch}/counters/{counter}/call-next": {"post": op(
            "callNext", "Call the earliest-registered waiting number among the counter's fields, priority first",
            {200: json("StaffTicket", links=called_links)},
            body="Anything", body_required=False, params=["branch", "counter", "IdempotencyKey"], security=STAFF,
            errors=merge(BODY, STAFF_ONLY, BRANCH, IDEM, STORE, {404: ("counter_not_found",),
                                                                 409: ("queue_empty", "counter_closed")}),
            desc="A counter still serving a number completes it first. 409 queue_empty when no one waits.")},
        "/api/branches/{branch}/tickets/{number}/{action}": {"post": op(
            "ticketAction", "recall, complete, skip, transfer (body {\"service\"}), cancel or check-in one number",
            {200: json("StaffTicket")}, body="TicketAction", body_required=False,
            params=["branch", "number", "action", "IdempotencyKey"], security=STAFF,
            errors=merge(BODY, STAFF_ONLY, BRANCH, IDEM, STORE, {
                403: ("out_of_scope",), 404: ("ticket_not_found", "unknown_action", "counter_not_found"),
                409: ("invalid_state", "recall_too_late", "counter_busy", "counter_closed", "wrong_day",
                      "already_checked_in"),
                422: ("unknown_service", "same_service")}),
            desc="A counter-bound token acts only on the numbers its counter called (403 out_of_scope), check-in "
                 "aside. transfer needs {\"service\"} (422 missing_field without it; same_service for the field "
                 "it is in; unknown_service for one the branch does not offer).")},
    }


def _holder_paths() -> dict[str, Any]:
    return {
        "/api/tickets/{token}": {
            "get": op("getTicket", "The holder's ticket: state, position, people ahead, ETA, leave_by",
                      {200: json("Ticket")}, params=["token", "travel"],
                      errors=merge(TICKET, {422: ("invalid_field",)}), security=NONE),
            "delete": op("giveBack", "Give the number back (it stays readable, as cancelled)", {200: json("Ticket")},
                         params=["token"], errors=merge(TICKET, STORE, {409: ("invalid_state",)}), security=NONE),
        },
        "/api/tickets/{token}/notifications": {"post": op(
            "optIn", "Opt in to SMS, web push or Zalo for this ticket (a phone given at issue already opts in to SMS)",
            {200: json("Ticket")}, body="OptIn", params=["token"],
            errors=merge(BODY, TICKET, STORE, {409: ("invalid_state",), 429: ("too_many_changes",), 422: (
                "invalid_channel", "phone_required", "invalid_phone", "invalid_subscription", "unknown_push_service",
                "invalid_ahead", "invalid_travel_minutes", "invalid_lang")}),
            desc="Asking again for what is kept changes nothing (200, no event); " + CHANGES_NOTE + ". 422 "
                 "phone_required for SMS or Zalo when neither the request nor the ticket has a phone; "
                 "invalid_subscription for push keys that are not a P-256 point, unknown_push_service for an endpoint "
                 "off QUEUECAST_PUSH_HOSTS.", security=NONE)},
        "/api/tickets/{token}/notifications/{channel}": {"delete": op(
            "optOut", "Turn one channel off; nothing to turn off changes nothing", {200: json("Ticket")},
            params=["token", "channel"],
            errors=merge(TICKET, STORE, {409: ("invalid_state",), 422: ("invalid_channel",),
                                         429: ("too_many_changes",)}), desc=CHANGES_NOTE, security=NONE)},
        "/api/tickets/{token}/rating": {"post": op(
            "rate", "Rate the service (1–5, an optional comment), once, after it is completed", {200: json("Ticket")},
            body="Rating", params=["token"],
            errors=merge(BODY, TICKET, STORE, {409: ("invalid_state", "already_rated"), 429: ("too_many_changes",),
                                               422: ("invalid_score", "invalid_comment")}),
            desc=CHANGES_NOTE, security=NONE)},
        "/t/{token}": {"get": op(
            "ticketPage", "The holder's phone page (HTML); its JSON twin is GET /api/tickets/{token}",
            {200: {"description": "the page", "content": {"text/html": {"schema": {"type": "string"}}}},
             404: {"description": "Not Found: ticket_not_found, branch_not_found, not_found: a page, or the API's "
                                  "error when the client asks for JSON (Accept: application/json)",
                   "content": {"text/html": {"schema": {"type": "string"}}, **error(404, TICKET[404])["content"]}}},
            params=["token", "lang", "page_travel"], security=NONE)},
    }


def _feed_paths() -> dict[str, Any]:
    sse_ok = {200: {"description": "the feed: a snapshot (or a resume marker and the missed events), then each "
                                   "event; a comment line now and then (a ping); a stream cut for being too slow "
                                   "ends with `event: close`",
                    "content": {"text/event-stream": {"schema": ref("FeedEvent")}}}}
    sse_errors = {400: ("invalid_since",), 429: ("too_many_feeds",), 503: ("unavailable", "store_unavailable")}
    ws = {"101": {"description": "Switching Protocols: the WebSocket feed. Close codes: 4008 too slow (resume with "
                                 "since), 4009 resync, 4029 too many feeds from the address, 4404 unknown branch or "
                                 "ticket, 4400 bad since, 1009 message too big, 1012 restarting, 1013 try again later"},
          "426": error(426, ("upgrade_required",)) | {"description": "Upgrade Required: upgrade_required (a plain "
                                                                    "HTTP request; this is a WebSocket)"}}
    x_ws = {"x-websocket": True}
    return {
        "/ws/branches/{branch}": {"get": {
            "operationId": "boardSocket", "summary": "Board feed over WebSocket: a snapshot, or a resume marker and "
            "exactly the missed events, then every event as it happens", "security": NONE,
            "description": "A WebSocket (GET with Upgrade: websocket); the same messages as the SSE feed, one JSON text "
                           "frame each (docs/feeds.md).",
            "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in ("branch", "since", "epoch")],
            "responses": ws, **x_ws}},
        "/ws/tickets/{token}": {"get": {
            "operationId": "ticketSocket", "summary": "One ticket's feed over WebSocket", "security": NONE,
            "description": "A WebSocket (GET with Upgrade: websocket): every branch event with the ticket's view.",
            "parameters": [{"$ref": f"#/components/parameters/{p}"} for p in ("token", "since", "epoch")],
            "responses": ws, **x_ws}},
        "/sse/branches/{branch}": {"get": op(
            "boardEvents", "Board feed as Server-Sent Events (Last-Event-ID or ?since= resumes)", sse_ok,
            params=["branch", "since", "epoch", "last_event_id"], security=NONE, errors=merge(BRANCH, sse_errors))},
        "/sse/tickets/{token}": {"get": op(
            "ticketEvents", "One ticket's feed as Server-Sent Events", sse_ok,
            params=["token", "since", "epoch", "last_event_id"], security=NONE, errors=merge(TICKET, sse_errors))},
    }


def _other_paths() -> dict[str, Any]:
    return {
        "/api/push/key": {"get": op(
            "pushKey", "The VAPID public key (applicationServerKey, base64url) a browser subscribes to web push with",
            {200: json("PushKey")}, security=NONE, errors={404: ("push_unavailable",)},
            desc="404 push_unavailable when this hub has no VAPID key (a redis:// store without "
                 "QUEUECAST_VAPID_PRIVATE_KEY).")},
        "/api/outbox/redrive": {"post": op(
            "redrive", "Put the branch's dead letters back in the notifier's queue: one (body {\"key\"}) or all ({})",
            {200: json("Redriven")}, body="Redrive", body_required=False, security=STAFF,
            errors=merge(BODY, BEARER, {403: ("staff_only",), 404: ("outbox_item_not_found",),
                                        409: ("not_a_dead_letter",), 422: ("unknown_field",)}),
            desc="The branch is the staff token's. An unknown field is refused (422 unknown_field), so that a "
                 "misspelt key never redrives every dead letter.")},
        "/hooks/esms": {"get": op(
            "esmsReport", "eSMS delivery report (its CallbackUrl)", {200: json("Report")},
            params=["SMSID", "RequestId", "SendStatus", "SendSuccess", "SendFailed", "error_info"], security=NONE,
            errors={400: ("bad_report",)}, desc="200 once read, whether or not it matched a message; sent → "
                                                 "delivered only.")},
        "/hooks/twilio": {"post": op(
            "twilioReport", "Twilio status callback (a form), signed with X-Twilio-Signature", {200: json("Report")},
            body="Form", form=True, security=NONE,
            errors=merge({k: v for k, v in BODY.items() if k in (408, 413)},
                         {400: ("bad_report", "client_disconnected"), 403: ("bad_signature",)}),
            desc="403 bad_signature when the signature does not match QUEUECAST_SMS_SECRET over "
                 "QUEUECAST_PUBLIC_URL/hooks/twilio, or when this hub has no Twilio secret.")},
        "/api/announcement": {"get": op(
            "announcement", "What the lobby says when a number is called: spoken text, subtitles, chime and clips",
            {200: json("Announcement")}, params=["announce_number", "announce_counter"], security=NONE,
            errors={422: ("invalid_announcement",)}, desc="Cacheable for a day: the same call always reads the same.")},
        "/demo/citizen-token": {"post": op(
            "demoCitizenToken", "A citizen token for a made-up valid CCCD, to try online numbers (`queuecast demo`)",
            {201: json("CitizenToken", "Created")}, security=NONE, errors={404: ("not_found",)},
            desc="404 not_found on any hub not started by `queuecast demo`.")},
        "/metrics": {"get": op("metrics", "Prometheus metrics", {200: {
            "description": "the Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}},
            security=NONE)},
        "/healthz": {"get": op("healthz", "Liveness", {200: json("Health")}, security=NONE)},
        "/readyz": {"get": op("readyz", "Readiness: store and broker reachable", {
            200: json("Ready"), 503: json("Ready", "Service Unavailable: which part does not answer")}, security=NONE)},
    }
