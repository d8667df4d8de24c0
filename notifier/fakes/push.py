"""A fake web push service (RFC 8030) that checks what a real one checks, and more: it hands out
subscriptions whose private keys it keeps, so it can DECRYPT each message (aes128gcm, RFC 8291) and
prove it was encrypted for that subscription, and it VERIFIES the VAPID JWT (RFC 8292: ES256, aud =
the endpoint's origin, exp in the future and within 24 hours) before taking anything.

Answers as the push services do: 201 with a Location; 404 for an unknown subscription, 410 for one
the browser dropped (`unsubscribe`); 401/403 for a bad VAPID token or key; 400 without a TTL.
"""
from __future__ import annotations

import base64
import json
import os
import time
import uuid
from typing import Any

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import jwt

from notifier.fakes.gateway import COMMON_MODES, FakeGateway, Received

MAX_EXP = 24 * 3600       # RFC 8292 §2: exp no more than 24 hours ahead


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def refuse(status: int, message: str) -> web.Response:
    return web.json_response({"code": status, "message": message}, status=status)


class FakePushService(FakeGateway):
    modes = COMMON_MODES | {"gone", "not_found"}

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._keys: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes, str | None]] = {}
        self._dropped: set[str] = set()

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/push/{sid}", self.push)]

    def subscription(self, application_server_key: str | None = None) -> dict[str, Any]:
        """A browser's PushSubscription.toJSON(); with `application_server_key`, only that VAPID key may push."""
        sid = uuid.uuid4().hex
        private = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self._keys[sid] = (private, auth, application_server_key)
        public = private.public_key().public_bytes(serialization.Encoding.X962,
                                                   serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": f"{self.url}/push/{sid}", "expirationTime": None,
                "keys": {"p256dh": b64url(public), "auth": b64url(auth)}}

    def unsubscribe(self, subscription: dict[str, Any]) -> None:
        self._dropped.add(subscription["endpoint"].rsplit("/", 1)[1])

    async def push(self, request: web.Request) -> web.Response:
        mode = self.take_failure()
        refused = self.refusal(mode)
        if refused is not None:
            return refused
        sid = request.match_info["sid"]
        if mode == "not_found" or sid not in self._keys:
            return refuse(404, "no such subscription")
        if mode == "gone" or sid in self._dropped:
            return refuse(410, "subscription expired or unsubscribed")
        private, auth, allowed_key = self._keys[sid]
        try:
            claims, key = self.vapid(request.headers.get("Authorization", ""))
        except ValueError as exc:
            return refuse(401, f"VAPID: {exc}")
        if allowed_key is not None and key != allowed_key:
            return refuse(403, "VAPID key is not the one this subscription was made with")
        if not request.headers.get("TTL", "").isdigit():
            return refuse(400, "a TTL header is required")
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return refuse(415, "Content-Encoding must be aes128gcm")
        try:
            plaintext = http_ece.decrypt(await request.read(), private_key=private, auth_secret=auth,
                                         version="aes128gcm")
        except (http_ece.ECEException, ValueError) as exc:
            return refuse(400, f"cannot decrypt: {exc}")
        received = Received(None, uuid.uuid4().hex, {
            "subscription": sid, "plaintext": plaintext, "message": _json_or_none(plaintext),
            "ttl": int(request.headers["TTL"]), "urgency": request.headers.get("Urgency", "normal"),
            "claims": claims, "vapid_key": key})
        self.received.append(received)
        await self.hold(mode)
        return web.Response(status=201, headers={"Location": f"{self.url}/message/{received.provider_id}"})

    def vapid(self, authorization: str) -> tuple[dict[str, Any], str]:
        """The verified claims and public key of `vapid t=JWT, k=KEY`; ValueError says what is wrong."""
        scheme, _, rest = authorization.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError("Authorization is not 'vapid t=..., k=...'")
        params = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
        token, key = params.get("t", ""), params.get("k", "")
        try:
            header = json.loads(unb64url(token.split(".")[0]))
            claims = jwt.decode(token, key)
        except (InvalidSignature, ValueError, IndexError):
            raise ValueError("the token's ES256 signature does not verify with k") from None
        if header.get("alg") != "ES256":
            raise ValueError(f"alg is {header.get('alg')!r}, not ES256")
        if claims.get("aud") != self.url:
            raise ValueError(f"aud {claims.get('aud')!r} is not this push service's origin {self.url}")
        now = time.time()
        if not isinstance(claims.get("exp"), int) or not now < claims["exp"] <= now + MAX_EXP:
            raise ValueError("exp must be in the future and within 24 hours")
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            raise ValueError("sub must be a mailto: or https: contact")
        return claims, key


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None
