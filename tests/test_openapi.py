"""/openapi.json keeps telling the truth as the code changes: every error code the hub can answer
is in it, its patterns are the ones the handlers apply, the WebSocket feeds are described as such,
and its links name operations that exist. (tests/test_schemathesis.py holds the running hub to it.)"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.config import load_config
from hub.phones import normalize_phone
from hub.settings import Settings
from hub.web import decode, openapi
from hub.web.openapi_schemas import phone_pattern

ROOT = Path(__file__).resolve().parent.parent
DOC = openapi.document(load_config(), Settings())
OPERATIONS = [(path, method, op) for path, item in DOC["paths"].items() for method, op in item.items()]

# Where the hub refuses something in the contract's shape: the domain's helpers, the web layer's.
RAISED = re.compile(r'(?:invalid|not_found|conflict|forbidden|unauthorized|_err|make|DomainError|error_response)'
                    r'\(\s*(?:"[a-z_]+",\s*|\d+,\s*)?"([a-z][a-z0-9_]*)"')
KINDS = {"bad_request", "invalid", "not_found", "conflict", "forbidden", "unauthorized", "rate_limited", "too_large",
         "unsupported_media", "unavailable"}                  # hub.domain.errors: kinds, not codes
NOT_AN_OPERATION_S = {
    "internal_error": "500: a fault of the hub itself, never an answer the contract promises",
    "invalid_day": "the admin page's own ?day= (an HTML page, not in the document)",
}


def documented_codes() -> set[str]:
    codes: set[str] = set()
    for _, _, op in OPERATIONS:
        for response in op["responses"].values():
            text = json.dumps(response)
            codes |= {c for enum in re.findall(r'"code": \{"enum": \[([^\]]*)\]', text) for c in json.loads(f"[{enum}]")}
    return codes


def test_every_error_code_the_hub_raises_is_in_the_document():
    raised = {m.group(1) for root in ("hub", "displays", "notifier") for f in (ROOT / root).rglob("*.py")
              for m in RAISED.finditer(f.read_text(encoding="utf-8"))} - KINDS
    assert raised, "the scan found nothing: RAISED no longer matches how errors are raised"
    missing = raised - documented_codes() - set(NOT_AN_OPERATION_S)
    assert sorted(missing) == [], "error codes the hub answers with that /openapi.json never names"


def test_every_operation_has_an_id_and_its_links_lead_somewhere():
    ids = [op["operationId"] for _, _, op in OPERATIONS]
    assert len(ids) == len(set(ids)), ids
    for path, method, op in OPERATIONS:
        for status, response in op["responses"].items():
            for name, link in response.get("links", {}).items():
                target = next(((p, t) for p, m, t in OPERATIONS if t["operationId"] == link["operationId"]), None)
                assert target is not None, (path, method, status, name)
                names = {DOC["components"]["parameters"][ref["$ref"].rsplit("/", 1)[1]]["name"]
                         for ref in target[1].get("parameters", [])}
                assert set(link.get("parameters", {})) <= names, (path, method, name, names)


def test_the_websocket_feeds_are_described_as_websockets():
    for path in ("/ws/branches/{branch}", "/ws/tickets/{token}"):
        op = DOC["paths"][path]["get"]
        assert op["x-websocket"] is True and set(op["responses"]) == {"101", "426"}, op


def test_the_idempotency_key_pattern_is_the_one_the_hub_applies():
    schema = DOC["components"]["parameters"]["IdempotencyKey"]["schema"]
    assert schema["pattern"] == decode.IDEMPOTENCY_KEY and schema["maxLength"] == decode.MAX_IDEMPOTENCY_KEY


@settings(max_examples=300, database=None)
@given(st.from_regex(phone_pattern(), fullmatch=True))
def test_every_phone_the_document_allows_is_a_mobile_the_hub_takes(phone):
    """The pattern is libphonenumber's own for Vietnamese mobiles: what it admits, hub.phones keeps."""
    assert normalize_phone(phone).startswith("+84")


@pytest.mark.parametrize("phone", ["0912345678", "+84912345678", "0321234567"])
def test_the_phone_pattern_admits_ordinary_mobiles(phone):
    assert re.fullmatch(phone_pattern(), phone)
