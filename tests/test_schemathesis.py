"""/openapi.json tells the truth (issue 14, point 10): schemathesis, with its default checks, against
a real `queuecast serve` process, four times (no token of ours, a staff token, a citizen token, an
enrolled kiosk device's token), then statefully along the document's OpenAPI links (a new number's
token to everything its holder can do; the branch list to the branches' operations). 0 failures;
the counts are printed at the end of the run (operations, cases, each check's passes and failures)
so they can be quoted. A check "passed" a case when it ran and raised nothing: schemathesis's own
checks pass trivially where they do not apply (allow_header_conformance on anything but a 405), and
the cases a check skips outright (probes of the request's shape, for most) are not counted.

Choices, and why:
- Real processes (`python -m hub serve` on 127.0.0.1 with hub_env's settings), not in-process
  ASGI: the fuzzer's bytes meet what production runs, uvicorn and hub.server (headers parsed by
  h11, bodies timed, tokens redacted from the access log), and the client address is 127.0.0.1,
  which hub_env's configuration makes every branch's lobby network (anonymous kiosk issuing works).
- A fresh hub per run, shared by that run's operations: each run starts from an empty log, so
  its cases and counts are the same every time (a fixed seed, derandomized, no example database).
- The document is the one the hub builds for that configuration, loaded when pytest collects
  (schemathesis's parametrize needs it then; its loader from a fixture, schemathesis.pytest.
  from_fixture, fails under pytest 9.2: it sets request.node._nodeid, which is gone), and each
  hub is checked to serve exactly it; the stateful run loads it from the hub's /openapi.json.
- The token runs take the operations that take a bearer token; the others (the holders', whose
  authority is the ticket token in the path, and the public ones) answer alike with any token, and
  are fuzzed in the first run and followed in the stateful one.
- The WebSocket feeds are documented (101, x-websocket) but not fuzzed: an HTTP client cannot
  upgrade, so every request it can make is a plain GET, refused 426 by design (tested in
  tests/test_api.py); the feeds themselves are tested over real WebSockets in tests/test_feeds.py.
- Some 422s are right for schema-valid data, because JSON Schema cannot say what they judge:
  SEMANTIC_422 names them per operation; any other 422 for valid data still fails (the
  positive_data_acceptance check, widened to 422 only there, and `semantic_refusals_only` below).
"""
from __future__ import annotations

import collections
import json
import time
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis

from hub.auth import Tokens
from hub.config import load_config
from hub.settings import Settings
from hub.web import openapi

from conftest import SECRET, bearer, hub_environment, start_hub, summary_lines
from waiting import deadline

pytestmark = pytest.mark.slow

B = "1"
SEED = 20260519
MAX_EXAMPLES = 6           # per operation, in the fuzzing phase (the coverage phase adds its boundary cases)
STATEFUL_SCENARIOS = 15
STATEFUL_STEPS = 20
TOKENS = Tokens(SECRET)
CITIZENS = ("001090123456", "001190004321", "079085001234", "024200007777")   # valid CCCDs, none 75+

# Operation → the 422 codes it may give schema-valid data, each for a reason JSON Schema cannot state.
SEMANTIC_422: dict[str, set[str]] = {
    # The document lists the hub's fields; each branch offers some of them.
    "POST /api/branches/{branch}/tickets": {"unknown_service"},
    "POST /api/branches/{branch}/counters/{counter}/open": {"unknown_service"},
    # Which field a number is in, and whether the action is transfer (which needs one), is the path's and the log's.
    "POST /api/branches/{branch}/tickets/{number}/{action}": {"unknown_service", "same_service", "missing_field"},
    # "Printable" is Python's str.isprintable(): Unicode categories, which no regex of JSON Schema's can name.
    "POST /api/branches/{branch}/kiosks": {"invalid_name"},
    # A push key must be a point on P-256; SMS and Zalo need a phone, in the request or on the ticket.
    "POST /api/tickets/{token}/notifications": {"invalid_subscription", "phone_required"},
}
POSITIVE = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]     # schemathesis's default


def config(only: list[str] | None = None) -> schemathesis.Config:
    """`only`: the operationIds to test (all but the WebSocket feeds by default)."""
    widened = [{"include-name": label, "checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE, "422"]}}}
               for label in SEMANTIC_422]
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "max-stream-events": 1,          # an SSE feed's first event (the snapshot); then the case is done
        "request-timeout": deadline(10),
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
        "operations": [{"include-path-regex": "^/ws/", "enabled": False}, *widened,
                       # DELETE /api/tickets/{token} cancels a number; its holder still reads it,
                       # as "cancelled" (CONTRACTS: a ticket's states), so it is not a use after free.
                       {"include-path-regex": "^/(api/tickets|sse/tickets|t)/", "include-method": "GET",
                        "checks": {"use_after_free": {"enabled": False}}},
                       *([{"exclude-operation-id": only, "enabled": False}] if only else [])],
    })


def semantic_refusals_only(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """A 422 for schema-valid data carries one of its operation's SEMANTIC_422 codes, and no other.
    (A check returns True for "does not apply", None for "passed", and raises for "failed".)"""
    meta = case.meta
    if response.status_code != 422 or meta is None or not meta.generation.mode.is_positive:
        return True
    code = response.json()["error"]["code"]
    allowed = SEMANTIC_422.get(case.operation.label, set())
    assert code in allowed, f"422 {code} for schema-valid data; only {sorted(allowed) or 'none'} may be"
    return None


class Tally:
    """What a run did: cases per operation, statuses, each check's passes and failures."""

    def __init__(self) -> None:
        self.cases: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[tuple[str, int]] = collections.Counter()
        self.checks: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.started = self.last = time.monotonic()

    def after_validate(self, context: Any, case: schemathesis.Case, response: Any, results: list[Any]) -> None:
        self.cases[case.operation.label] += 1
        self.last = time.monotonic()
        self.statuses[(case.operation.label, response.status_code)] += 1
        for result in results:
            self.checks[result.name]["failed" if result.failure is not None else "passed"] += 1

    def hook(self, schema: schemathesis.BaseSchema) -> None:
        schema.hooks.register_hook_with_name(self.after_validate, "after_validate")

    def unhook(self, schema: schemathesis.BaseSchema) -> None:
        schema.hooks.unregister(self.after_validate)

    def ok(self, label: str) -> bool:
        return any(200 <= status < 300 for (op, status), _ in self.statuses.items() if op == label)

    def report(self, name: str) -> list[str]:
        answered = sum(self.ok(label) for label in self.cases)
        lines = [f"schemathesis [{name}]: {len(self.cases)} operations ({answered} answered 2xx at least once), "
                 f"{sum(self.cases.values())} cases, {self.last - self.started:.1f} s"]
        for check, counts in sorted(self.checks.items()):
            lines.append(f"  {check}: {counts['passed']} passed, {counts['failed']} failed")
        return lines


def _say(request: pytest.FixtureRequest, lines: list[str]) -> None:
    summary_lines(request.config).extend(lines)          # printed at the end of the run (conftest)


def kiosk_token(url: str) -> str:
    """A device enrolled the way a branch manager does it: a code from the admin API, claimed by the kiosk."""
    made = httpx.post(f"{url}/api/branches/{B}/kiosks", json={"name": "fuzz"}, headers=bearer(TOKENS.staff(B)),
                      timeout=deadline(10))
    assert made.status_code == 201, made.text
    claimed = httpx.post(f"{url}/api/branches/{B}/kiosks/enrol", json={"code": made.json()["enrol_code"]},
                         timeout=deadline(10))
    assert claimed.status_code == 200, claimed.text
    return str(claimed.json()["token"])


def headers_for(run: str, url: str) -> dict[str, str]:
    if run == "staff":
        return bearer(TOKENS.staff(B))
    if run == "citizen":
        return bearer(TOKENS.citizen(CITIZENS[0]))
    return bearer(kiosk_token(url))


# The document as the hub builds it for hub_env's configuration (the bundled branches, default
# settings). Twice: with schemathesis making up bearer tokens where an operation takes one (no token
# of ours), and without (our token on every request, for the operations that take one).
DOCUMENT = openapi.document(load_config(), Settings())
BEARER_OPERATIONS = [op["operationId"] for item in DOCUMENT["paths"].values() for op in item.values()
                     if any(op.get("security", []))]
forged = schemathesis.openapi.from_dict(DOCUMENT, config=config())
ours = schemathesis.openapi.from_dict(DOCUMENT, config=config(only=BEARER_OPERATIONS))
ours.config.generation.update(with_security_parameters=False)


def a_hub(request, tmp_path_factory, lobby_config) -> Any:
    """A fresh `queuecast serve` for one run, shared by its operations (module scope: one per run)."""
    workdir = tmp_path_factory.mktemp("fuzz")
    hub = start_hub(hub_environment(workdir, lobby_config), workdir / "hub.log")
    request.addfinalizer(hub.stop)
    served = httpx.get(f"{hub.url}/openapi.json", timeout=deadline(10)).json()
    assert served == json.loads(json.dumps(DOCUMENT)), "the hub serves another document than the one fuzzed"
    return hub


@pytest.fixture(scope="module", params=["anonymous"])
def anonymous(request, tmp_path_factory, lobby_config) -> Any:
    yield from _run(request, a_hub(request, tmp_path_factory, lobby_config), forged, {})


@pytest.fixture(scope="module", params=["staff", "citizen", "kiosk"])
def token(request, tmp_path_factory, lobby_config) -> Any:
    hub = a_hub(request, tmp_path_factory, lobby_config)
    yield from _run(request, hub, ours, headers_for(request.param, hub.url))


def _run(request, hub, schema, headers) -> Any:
    tally = Tally()
    tally.hook(schema)
    yield {"url": hub.url, "headers": headers}
    tally.unhook(schema)
    _say(request, tally.report(request.param))


@forged.parametrize()
def test_without_a_token_of_ours(case, anonymous):
    case.call_and_validate(base_url=anonymous["url"], additional_checks=[semantic_refusals_only])


@ours.parametrize()
def test_with_a_token(case, token):
    case.call_and_validate(base_url=token["url"], headers=token["headers"], additional_checks=[semantic_refusals_only])


def test_the_documents_links_lead_through_a_number_s_life(request, hub):
    """The stateful phase: scenarios that follow the links, each request with the token its
    operation needs (a counter's staff, a citizen for online numbers, none for a holder, who
    has the ticket's token in the path), so that they reach the holders' flows."""
    schema = schemathesis.openapi.from_url(f"{hub.url}/openapi.json", config=config())
    schema.config.generation.update(with_security_parameters=False)
    # The operations no link leads to or from, fuzzed above, would only spend the scenarios' steps.
    schema = schema.exclude(path_regex=r"^/(healthz|readyz|metrics|hooks/|demo/|api/push/|api/announcement|api/outbox/)")
    tally = Tally()
    tally.hook(schema)
    citizens = iter(range(10**9))

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            security = case.operation.definition.raw.get("security")
            if security == []:
                return {}
            if case.operation.label == "POST /api/branches/{branch}/tickets" and \
                    isinstance(case.body, dict) and case.body.get("channel") == "online":
                return {"headers": bearer(TOKENS.citizen(CITIZENS[next(citizens) % len(CITIZENS)]))}
            # The manager of the branch the request is for (the redrive's branch is the token's: B).
            return {"headers": bearer(TOKENS.staff(str(case.path_parameters.get("branch", B))))}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            super().validate_response(response, case, additional_checks=[semantic_refusals_only], **kwargs)

    Machine.run(settings=hypothesis.settings(
        max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS, derandomize=True, database=None,
        deadline=None, suppress_health_check=list(hypothesis.HealthCheck)))
    _say(request, tally.report("stateful"))
    reached = {label for label in tally.cases if tally.ok(label)}
    holders = {"GET /api/tickets/{token}", "DELETE /api/tickets/{token}", "POST /api/tickets/{token}/notifications",
               "DELETE /api/tickets/{token}/notifications/{channel}", "POST /api/tickets/{token}/rating",
               "GET /sse/tickets/{token}", "GET /t/{token}"}
    assert "POST /api/branches/{branch}/tickets" in reached, sorted(reached)
    assert len(reached & holders) >= 3, f"the links led to too few of a holder's operations: {sorted(reached)}"
