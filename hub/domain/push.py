"""Web push subscriptions a holder hands the hub, and where the hub may connect to deliver them.

A subscription names a URL the hub will POST to, so it is an untrusted destination: the hub takes
only the fields a browser's `PushSubscription.toJSON()` has, of the sizes the Push API (RFC 8291)
gives them, on an https endpoint of a known push service (`PushDestinations`, from
QUEUECAST_PUSH_HOSTS), and never an address on the hub's own networks. The same rule is applied
again by the notifier at send time, after DNS (notifier/senders/destinations.py): a name may
resolve elsewhere tomorrow, and a setting may have changed since the subscription was stored.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hub.domain.errors import DomainError, invalid

# FCM (Chrome, Edge, Android), Mozilla autopush (Firefox), Apple (Safari), WNS (older Edge).
DEFAULT_PUSH_HOSTS = ("fcm.googleapis.com", "push.services.mozilla.com", "web.push.apple.com",
                      "notify.windows.com")
MAX_ENDPOINT = 1024          # characters; real endpoints are 150–500 (WNS the longest)
P256DH_BYTES, AUTH_BYTES = 65, 16     # an uncompressed P-256 point; the auth secret (RFC 8291 §3.2)
_URL_CHARS = re.compile(r"[\x21-\x7e]+")     # printable ASCII: no spaces, controls or surrogates
_B64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_HOST_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# P-256 (NIST SP 800-186 §3.2.1.3): y² = x³ − 3x + b (mod p)
_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B


@dataclass(frozen=True)
class PushDestinations:
    """Where web push may go. `hosts`: host suffixes of the push services (a name matches itself
    and its subdomains) or exact IP addresses; `allow_private`: whether a destination may be a
    private, loopback or link-local address (the tests' and a lab's own push service, never production)."""

    hosts: tuple[str, ...] = DEFAULT_PUSH_HOSTS
    allow_private: bool = False

    def host_allowed(self, host: str) -> bool:
        """Whether `host` (a name, or an address as written in a URL) is one of the push services."""
        host = host.lower().rstrip(".").strip("[]")
        literal = ip_literal(host)
        if literal is not None:          # an address is never a suffix: only one listed as such
            return any(ip_literal(h) == literal for h in self.hosts)
        return any(ip_literal(h) is None and (host == h or host.endswith("." + h)) for h in self.hosts)

    def address_allowed(self, address: str) -> bool:
        """Whether the hub may connect to `address` (after DNS): public unicast only, unless
        private addresses are allowed; never multicast or unspecified (0.0.0.0 reaches this host)."""
        ip = ip_literal(address.split("%", 1)[0])         # fe80::1%eth0: the zone is no part of it
        if ip is None:
            return False
        ip = _embedded_v4(ip) or ip
        if ip.is_multicast or ip.is_unspecified:
            return False
        return (ip.is_global and not ip.is_reserved) or self.allow_private

    def endpoint_problem(self, endpoint: str) -> str | None:
        """Why the hub will not POST to `endpoint` (its host is not a known push service), or None."""
        try:
            host = urlsplit(endpoint).hostname
        except ValueError:
            host = None
        if not host:
            return "the endpoint has no host"
        if not self.host_allowed(host):
            return "the endpoint is not on a known push service"
        if ip_literal(host) is not None and not self.address_allowed(host):
            return "the endpoint's address is not a public one"
        return None


def parse_hosts(text: str) -> tuple[str, ...]:
    """QUEUECAST_PUSH_HOSTS: comma-separated host suffixes (a leading "*." is allowed and means the
    same) or IP addresses. ValueError names the first entry that is neither."""
    hosts = []
    for entry in text.split(","):
        host = entry.strip().lower().removeprefix("*.")
        if not host:
            continue
        if ip_literal(host.strip("[]")) is None and not all(_HOST_LABEL.fullmatch(x) for x in host.split(".")):
            raise ValueError(f"not a host name or an IP address: {entry.strip()[:80]!r}")
        hosts.append(host.strip("[]"))
    if not hosts:
        raise ValueError("no push service listed")
    return tuple(hosts)


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _embedded_v4(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries to (mapped, NAT64, 6to4): judged as that address, since
    ::ffff:127.0.0.1 or 64:ff9b::7f00:1 reach 127.0.0.1."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def subscription(raw: Any, destinations: PushDestinations) -> dict[str, Any]:
    """The subscription to keep: exactly endpoint, keys.p256dh, keys.auth (unpadded base64url) and
    expirationTime (if given: null or a number). Anything else the client sent is dropped, never stored."""
    if not isinstance(raw, dict):
        raise _bad("subscription", "A web push subscription is an object with endpoint and keys.")
    endpoint, keys = raw.get("endpoint"), raw.get("keys")
    if not isinstance(endpoint, str) or not endpoint:
        raise _bad("subscription.endpoint", "The subscription's endpoint must be a URL.")
    if len(endpoint) > MAX_ENDPOINT or not _URL_CHARS.fullmatch(endpoint):
        raise _bad("subscription.endpoint",
                   f"The subscription's endpoint must be a URL of printable ASCII, at most {MAX_ENDPOINT} characters.")
    try:
        url = urlsplit(endpoint)
        port = url.port                                  # a port that is not a number raises here
    except ValueError:
        raise _bad("subscription.endpoint", "The subscription's endpoint is not a URL.") from None
    if url.scheme != "https" or not url.hostname or "@" in url.netloc or url.hostname.endswith(".") or port == 0:
        raise _bad("subscription.endpoint", "The subscription's endpoint must be an https:// URL of a host.")
    problem = destinations.endpoint_problem(endpoint)
    if problem is not None:
        raise DomainError("invalid", "unknown_push_service",
                          f"The subscription's endpoint is not on a known web push service: {problem}.",
                          "Địa chỉ nhận thông báo đẩy không thuộc dịch vụ thông báo đẩy được hỗ trợ.",
                          field="subscription.endpoint")
    if not isinstance(keys, dict):
        raise _bad("subscription.keys", "The subscription needs keys p256dh and auth.")
    p256dh = _key(keys.get("p256dh"), "p256dh", P256DH_BYTES)
    if p256dh[0] != 0x04 or not _on_p256(p256dh):
        raise _bad("subscription.keys.p256dh", "keys.p256dh must be an uncompressed P-256 public key.")
    auth = _key(keys.get("auth"), "auth", AUTH_BYTES)
    out: dict[str, Any] = {"endpoint": endpoint, "keys": {"p256dh": _b64(p256dh), "auth": _b64(auth)}}
    if "expirationTime" in raw:          # toJSON() has it, mostly null: kept as the browser gave it
        expires = raw["expirationTime"]
        if expires is not None and (isinstance(expires, bool) or not isinstance(expires, (int, float))
                                    or not math.isfinite(expires) or expires < 0):
            raise _bad("subscription.expirationTime", "expirationTime must be null or a time in milliseconds.")
        out["expirationTime"] = expires
    return out


def _key(value: Any, name: str, size: int) -> bytes:
    # 4 characters of base64 carry 3 bytes: anything longer than `size` needs is refused unread.
    if isinstance(value, str) and len(value) <= 4 * (size // 3 + 1) and _B64URL.fullmatch(value):
        try:
            data = base64.urlsafe_b64decode(value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4))
        except (binascii.Error, ValueError):
            data = b""
        if len(data) == size:
            return data
    raise _bad(f"subscription.keys.{name}", f"keys.{name} must be {size} bytes in base64url.")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _on_p256(point: bytes) -> bool:
    """Whether an uncompressed point lies on P-256: a key that does not cannot encrypt anything,
    and is better refused now than found unusable at send time."""
    x, y = int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big")
    return x < _P and y < _P and (y * y - (x * x * x - 3 * x + _B)) % _P == 0


def _bad(field: str, message: str) -> DomainError:
    return invalid("invalid_subscription", message, "Đăng ký nhận thông báo đẩy không hợp lệ.", field=field)
