"""A self-signed certificate for 127.0.0.1, and the fake push service behind it: the hub takes only
https:// push endpoints, as browsers hand out. A process that must trust it gets SSL_CERT_FILE."""
from __future__ import annotations

import datetime
import ipaddress
import ssl
from contextlib import asynccontextmanager
from pathlib import Path


def self_signed(tmp: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A certificate for 127.0.0.1: the server's TLS context, and a client's that trusts only it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp / "push.pem").write_bytes(pem)
    (tmp / "push.key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp / "push.pem", tmp / "push.key")
    return server, ssl.create_default_context(cadata=pem.decode())


@asynccontextmanager
async def push_service_over_tls(server_tls: ssl.SSLContext):
    """notifier.fakes.push.FakePushService behind https://127.0.0.1:PORT (its own server speaks plain HTTP)."""
    from aiohttp import web

    from notifier.fakes.push import FakePushService

    service = FakePushService()
    app = web.Application()
    app.add_routes(service.routes())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls).start()
    service.url = f"https://127.0.0.1:{runner.addresses[0][1]}"      # endpoints and the VAPID aud follow it
    try:
        yield service
    finally:
        await runner.cleanup()
