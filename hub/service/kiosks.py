"""`KioskDevices`: enrolling, handing out, listing and revoking a branch's kiosk devices.

Every change is a command through the pipeline (hub.service.pipeline), so it is an event in the
branch's log like any other, and every hub process, on SQLite or Redis, after a restart too, agrees
on which devices may issue. A device's token (hub.auth) names it; the log says whether it still may.
"""
from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from hub.auth import Tokens
from hub.domain import kiosk_commands
from hub.domain.errors import conflict
from hub.domain.kiosks import PENDING, KioskDevice
from hub.domain.state import BranchState
from hub.service.branches import Branches
from hub.service.pipeline import IdemRequest, Pipeline

Answer = dict[str, Any]


def new_device_id() -> str:
    """A device id: 'k' and 40 random bits, unique within a branch (enrol refuses a repeat)."""
    return "k" + secrets.token_hex(5)


def device_view(d: KioskDevice, now: datetime) -> Answer:
    """What the admin page lists of a device (never its token)."""
    def iso(t: datetime | None) -> str | None:
        return t.isoformat(timespec="seconds") if t else None
    return {"device": d.id, "name": d.name, "state": d.state, "enrolled_at": iso(d.enrolled_at), "by": d.by,
            "revoked_at": iso(d.revoked_at), "last_issue": iso(d.last_issue), "issued_today": d.issued_on(now.date())}


class KioskDevices:
    def __init__(self, branches: Branches, pipeline: Pipeline, tokens: Tokens, public_url: str,
                 catch_up: Callable[[str], Awaitable[None]]):
        self.branches, self.pipeline, self.tokens = branches, pipeline, tokens
        self.public_url = public_url.rstrip("/")
        self.catch_up = catch_up

    async def enrol(self, branch: str, name: str | None = None, *, by: str, pending: bool = False) -> Answer:
        """A new device. Without `pending` (the CLI) the answer carries its token; with it (the admin
        page) a one-time enrolment code and link, which the kiosk exchanges for the token (`claim`).
        The code rides in the link's fragment (`#enrol=`): a browser never sends a fragment, so it
        reaches no access log and no Referer."""
        device = new_device_id()

        def respond(st: BranchState, evs: list[Any], now: datetime) -> Answer:
            body = device_view(st.kiosks.devices[device], now)
            if not pending:
                body["token"] = self.tokens.kiosk(st.id, device)
                return body
            code, exp = self.tokens.enrol_code(st.id, device)
            body.update(enrol_code=code, enrol_url=f"{self.public_url}/kiosk/{st.id}#enrol={code}",
                        expires_at=datetime.fromtimestamp(exp, now.tzinfo).isoformat(timespec="seconds"))
            return body

        return await self.pipeline.run(
            "kiosk.enrol", branch,
            lambda st, now: kiosk_commands.enrol(st, now, device, name, by=by, pending=pending),
            respond, log_fields={"device": device, "by": by})

    async def claim(self, branch: str, code: str, idem: IdemRequest | None = None) -> Answer:
        """The kiosk's one-time enrolment code → its token (once: a second use is refused)."""
        await self.branches.hold(branch)
        code_branch, device = self.tokens.read_enrol_code(code)
        if code_branch != branch:
            raise conflict("wrong_branch", f"This enrolment code is for branch {code_branch}, not {branch}.",
                           f"Mã đăng ký dành cho chi nhánh {code_branch}, không phải {branch}.")
        await self.refresh(branch, device)

        def respond(st: BranchState, evs: list[Any], now: datetime) -> Answer:
            d = st.kiosks.devices[device]
            return {"token": self.tokens.kiosk(st.id, device), "device": device, "name": d.name, "branch": st.id}

        return await self.pipeline.run("kiosk.claim", branch,
                                       lambda st, now: kiosk_commands.claim(st, now, device), respond,
                                       idem=idem, log_fields={"device": device})

    async def revoke(self, branch: str, device: str, *, by: str) -> Answer:
        await self.refresh(branch, device)
        return await self.pipeline.run(
            "kiosk.revoke", branch, lambda st, now: kiosk_commands.revoke(st, now, device, by=by),
            lambda st, evs, now: device_view(st.kiosks.devices[device], now),
            log_fields={"device": device, "by": by})

    async def check(self, branch: str, device: str, now: datetime) -> Answer:
        """The device as the log has it now, if it may issue (401 otherwise): the kiosk's "who am I"."""
        await self.refresh(branch, device)
        return device_view(self.branches.state(branch).kiosks.require(device), now)

    def listing(self, branch: str, now: datetime) -> list[Answer]:
        return [device_view(d, now) for d in self.branches.state(branch).kiosks.devices.values()]

    async def refresh(self, branch: str, device: str) -> None:
        """A device this process does not know as active may have been enrolled or claimed a moment
        ago by another process (the CLI, another hub on the same SQLite file): read the log first.
        (A revoked device stays revoked: nothing to look for.)"""
        d = (await self.branches.hold(branch)).kiosks.get(device)
        if d is None or d.state == PENDING:
            await self.catch_up(branch)
