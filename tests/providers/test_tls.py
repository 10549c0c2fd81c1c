"""TLS is always verified: a private CA can be added per target, verification never skipped."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rotator.errors import TLSVerificationFailed
from rotator.providers.adobe import AdobeFlowService
from rotator.providers.base import ProviderContext, TargetSpec
from rotator.sandbox import defaults
from rotator.sandbox.app import create_app

pytestmark = pytest.mark.integration


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca_and_server_cert(tmp: Path) -> tuple[Path, Path, Path]:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("rotator test CA"))
        .issuer_name(_name("rotator test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@pytest.fixture
def https_sandbox(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(),
        ssl_certfile=str(cert),
        ssl_keyfile=str(key),
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    url = f"https://127.0.0.1:{port}"
    with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(ca))) as admin:
        admin.put(
            "/_sandbox/adobe/resources/conn-tls",
            json={
                "auth": {
                    "specName": "Basic Authentication",
                    "params": {"username": "u", "password": "p"},
                }
            },
        ).raise_for_status()
    yield url, ca
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def target(url: str, ca_bundle: str | None) -> TargetSpec:
    urls = defaults.base_urls(url)
    return TargetSpec(
        name="tls",
        provider="adobe",
        base_url=urls["adobe"],
        resource_id="conn-tls",
        options={"ims_url": urls["adobe_ims"], "org_id": defaults.ADOBE_ORG_ID},
        credentials={
            "client_id": defaults.ADOBE_CLIENT_ID,
            "client_secret": defaults.ADOBE_CLIENT_SECRET,
        },
        ca_bundle=ca_bundle,
    )


def read(spec: TargetSpec) -> str:
    async def go() -> str:
        context = ProviderContext(timeout=5)
        try:
            state = await AdobeFlowService(context).read(spec, journal=None)  # type: ignore[arg-type]
            return state.version
        finally:
            await context.aclose()

    return asyncio.run(go())


def test_private_ca_bundle_is_trusted(https_sandbox: tuple[str, Path]) -> None:
    url, ca = https_sandbox
    assert read(target(url, str(ca))).startswith('"')


def test_untrusted_certificate_is_a_permanent_error(https_sandbox: tuple[str, Path]) -> None:
    url, _ca = https_sandbox
    with pytest.raises(TLSVerificationFailed, match="ca_bundle"):
        read(target(url, None))


def test_targets_file_cannot_turn_verification_off(tmp_path: Path) -> None:
    from rotator.config import load_targets
    from rotator.errors import ConfigError
    from rotator.providers import provider_names

    path = tmp_path / "rotator.yaml"
    path.write_text(
        "secrets: {s: {source: store}}\n"
        "targets:\n  t:\n    provider: adobe\n    base_url: https://x.example\n"
        "    resource_id: c\n    secret: s\n    verify: false\n"
    )
    with pytest.raises(ConfigError, match="targets.t.verify"):
        load_targets(path, provider_names())
