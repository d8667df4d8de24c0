"""Kiosk devices over HTTP (README "Kiosk devices"): who may take a kiosk number, and the branch
manager's enrolment and revocation of the devices.

- `GET /api/branches/{b}/kiosks` (the branch's staff token without a counter): the devices.
- `POST /api/branches/{b}/kiosks` `{"name"?}` (same): enrol one; 201 with a one-time enrolment code,
  the link that carries it (`/kiosk/{b}#enrol=CODE`: in the fragment, never sent to a server) and that link as an SVG QR code.
- `DELETE /api/branches/{b}/kiosks/{device}` (same): revoke it, for good, in every hub process.
- `POST /api/branches/{b}/kiosks/enrol` `{"code"}` (no token: the code is the authority): the kiosk's
  one-time code → its device token; a second use is refused (409 enrolment_code_used).
- `GET /api/branches/{b}/kiosks/me` (a kiosk or staff token): what the token stands for, if it still may.
"""
from __future__ import annotations

import re

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hub import qr
from hub.auth import Claims
from hub.domain.errors import forbidden, not_found, unauthorized
from hub.domain.kiosks import lobby_allows
from hub.web import decode

DEVICE_ID = re.compile(r"k[0-9a-f]{10}")
MAX_CODE = 200


class DeviceId(Convertor[str]):
    """A device id in a path (hub.service.kiosks.new_device_id): only one makes /kiosks/{device} match,
    so that /kiosks/enrol and /kiosks/me stay paths of their own (a DELETE of them is 405, not a
    revocation of a device called "enrol")."""

    regex = DEVICE_ID.pattern

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("kiosk_device", DeviceId())       # Starlette keeps convertors in one registry


def _required(kind: str) -> Exception:
    make = unauthorized if kind == "unauthorized" else forbidden
    return make("kiosk_device_required",
                "Kiosk numbers are issued only by an enrolled kiosk device of this branch (or from the branch's "
                "lobby network, where the branch allows it). Ask the branch manager to enrol this kiosk.",
                "Số thứ tự tại ki-ốt chỉ được cấp từ ki-ốt đã đăng ký của chi nhánh (hoặc từ mạng nội bộ sảnh "
                "chờ nếu chi nhánh cho phép). Mời liên hệ cán bộ quản lý chi nhánh để đăng ký ki-ốt.")


def kiosk_device(claims: Claims, branch: str) -> str:
    """The device id of a kiosk token of `branch` (403 for another branch's device)."""
    if claims.branch != branch:
        raise forbidden("wrong_branch", f"This kiosk device is enrolled at branch {claims.branch}, not {branch}.",
                        f"Ki-ốt này được đăng ký tại chi nhánh {claims.branch}, không phải {branch}.")
    if not claims.device:
        raise unauthorized("invalid_token", "This kiosk token names no device.", "Mã thiết bị không hợp lệ.")
    return claims.device


def kiosk_channel(request: Request, branch: str, claims: Claims | None) -> str | None:
    """May this request take a kiosk number at `branch`? The device id for a kiosk token; None for
    branch staff (issuing for a citizen at the counter) or an anonymous kiosk on the branch's lobby
    network (policy kiosk_lobby_networks); anyone else is refused: 401 without a token, 403 with a
    token that is no kiosk's (a citizen's). Whether the device is still enrolled, the log says."""
    if claims is not None and claims.kind == "kiosk":
        return kiosk_device(claims, branch)
    if claims is not None and claims.kind == "staff":
        decode.staff(request, branch)
        return None
    networks = request.app.state.service.centre.branches[branch].policy.kiosk_lobby_networks
    if lobby_allows(networks, request.client.host if request.client else None):
        return None
    raise _required("unauthorized" if claims is None else "forbidden")


def manager(request: Request, branch: str) -> Claims:
    """The branch's staff token without a counter binding (the admin page's)."""
    request.app.state.service.branches.known(branch)         # 404 for an unknown branch first
    claims = decode.staff(request, branch)
    if claims.counter is not None:
        raise forbidden("manager_only", "Kiosk devices are managed with the branch's staff token without a counter.",
                        "Chỉ cán bộ quản lý chi nhánh (mã không gắn với quầy) mới quản lý được ki-ốt.")
    return claims


async def listing(request: Request) -> JSONResponse:
    branch = request.path_params["branch"]
    manager(request, branch)
    service = request.app.state.service
    await service.hold(branch)
    return JSONResponse({"devices": service.kiosks.listing(branch, service.now())})


async def enrol(request: Request) -> JSONResponse:
    branch = request.path_params["branch"]
    claims = manager(request, branch)
    data = await decode.json_body(request, required=False)
    name = decode.field(data, "name", str, required=False)
    body = await request.app.state.service.kiosks.enrol(branch, name, by=claims.subject, pending=True)
    body["enrol_qr"] = qr.svg(body["enrol_url"])
    return JSONResponse(body, status_code=201)


async def revoke(request: Request) -> JSONResponse:
    branch = request.path_params["branch"]
    claims = manager(request, branch)
    device = str(request.path_params["device"])
    return JSONResponse(await request.app.state.service.kiosks.revoke(branch, device, by=claims.subject))


async def claim(request: Request) -> JSONResponse:
    branch = request.path_params["branch"]
    await request.app.state.service.hold(branch)
    data = await decode.json_body(request)
    code = decode.field(data, "code", str)
    if len(code) > MAX_CODE:
        raise not_found("enrolment_code_not_found", "This is not an enrolment code of this hub.",
                        "Mã đăng ký ki-ốt không hợp lệ.")
    return JSONResponse(await request.app.state.service.kiosks.claim(branch, code, decode.idempotency(request, None)))


async def me(request: Request) -> JSONResponse:
    branch = request.path_params["branch"]
    service = request.app.state.service
    await service.hold(branch)
    claims = decode.bearer(request, required=True)
    if claims.kind == "staff":
        decode.staff(request, branch)
        return JSONResponse({"kind": "staff", "branch": branch, "counter": claims.counter})
    if claims.kind != "kiosk":
        raise _required("forbidden")
    device = kiosk_device(claims, branch)
    return JSONResponse({"kind": "kiosk", "branch": branch,
                         **await service.kiosks.check(branch, device, service.now())})


routes = [
    Route("/api/branches/{branch}/kiosks", listing, methods=["GET"]),
    Route("/api/branches/{branch}/kiosks", enrol, methods=["POST"]),
    Route("/api/branches/{branch}/kiosks/enrol", claim, methods=["POST"]),
    Route("/api/branches/{branch}/kiosks/me", me, methods=["GET"]),
    Route("/api/branches/{branch}/kiosks/{device:kiosk_device}", revoke, methods=["DELETE"]),
]
