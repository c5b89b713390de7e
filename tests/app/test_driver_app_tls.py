"""HTTPS for phones: ``serve`` listens with TLS on a given certificate, and ``--tls-self-signed``
makes a local authority whose server certificate a client trusting that authority accepts."""

from __future__ import annotations

import contextlib
import ssl
from pathlib import Path

import click
import httpx
import msgspec
import pytest
import trustme

from app.cli.serve import _with_tls
from app.cli.tls import ensure_local_tls, local_names
from app.process.urls import base_url, loopback_url
from app.settings import Settings
from simulator.simulation import SimulationConfig
from tests.conftest import LiveServer


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    """A test certificate authority."""
    return trustme.CA()


@pytest.fixture
def settings(settings: Settings, authority: trustme.CA, tmp_path: Path) -> Settings:
    """This module's server: HTTPS with a certificate for 127.0.0.1 from the test authority."""
    issued = authority.issue_cert("127.0.0.1", "localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.private_key_and_cert_chain_pem.write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return msgspec.structs.replace(settings, tls_cert=cert, tls_key=key)


async def test_serve_with_a_certificate_answers_https_that_the_authority_vouches_for(
    server: LiveServer, authority: trustme.CA
) -> None:
    """A client trusting the authority gets the driver app over HTTPS; plain HTTP gets nothing."""
    base = f"https://127.0.0.1:{server.settings.port}"
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    async with httpx.AsyncClient(verify=trusting, timeout=10) as client:
        page = await client.get(f"{base}/driver")
        assert page.status_code == 200
        assert "/static/driver/main.js" in page.text
        assert (await client.get(f"{base}/healthz")).json() == {"status": "ok"}
    async with httpx.AsyncClient(timeout=10) as client:  # the system's authorities only
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"{base}/healthz")
    async with httpx.AsyncClient(timeout=10) as client:
        with pytest.raises(httpx.HTTPError):
            await client.get(f"http://127.0.0.1:{server.settings.port}/healthz")


async def test_links_and_the_in_process_simulator_follow_the_listeners_https(
    server: LiveServer, authority: trustme.CA, tmp_path: Path
) -> None:
    """Under TLS the links people are shown are https, and the simulator that ``serve
    --simulate`` runs reaches the API over HTTPS on the loopback, trusting the given
    authority."""
    unset = msgspec.structs.replace(server.settings, public_url=None, host="127.0.0.1")
    assert base_url(unset) == f"https://127.0.0.1:{server.settings.port}"
    ca = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca))
    config = SimulationConfig(url=loopback_url(server.settings), api_key="unused", ca_file=ca)
    assert config.url == f"https://localhost:{server.settings.port}"
    async with httpx.AsyncClient(verify=config.tls() or True, timeout=10) as client:
        assert (await client.get(f"{config.url}/healthz")).json() == {"status": "ok"}


def test_a_local_authority_signs_a_certificate_a_client_accepts_for_each_name(
    tmp_path: Path,
) -> None:
    """The server certificate verifies against the CA file for localhost and 127.0.0.1, and the
    authority is kept across restarts while the server certificate is made anew."""
    names = local_names("127.0.0.1")
    made = ensure_local_tls(tmp_path, names)
    assert {"localhost", "127.0.0.1"} <= set(made.names)
    context = ssl.create_default_context(cafile=str(made.ca_cert))
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(made.cert, made.key)
    for name in ("localhost", "127.0.0.1"):
        _handshake(context, server_side, name)
    ca_before, cert_before = made.ca_cert.read_bytes(), made.cert.read_bytes()
    again = ensure_local_tls(tmp_path, names)
    assert again.ca_cert.read_bytes() == ca_before
    assert again.cert.read_bytes() != cert_before
    assert oct(made.key.stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "ca-key.pem").stat().st_mode & 0o777) == "0o600"


def test_self_signed_refuses_a_given_certificate_and_a_lone_certificate_is_refused(
    tmp_path: Path,
) -> None:
    """``--tls-self-signed`` with ``--tls-cert`` is a usage error; so is a certificate without
    its key; a self-signed start names the phone steps and the CA file."""
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(click.UsageError, match="--tls-self-signed"):
        _with_tls(Settings(data_dir=tmp_path, tls_cert=cert, tls_key=cert), self_signed=True)
    with pytest.raises(click.UsageError, match="both --tls-cert and --tls-key"):
        _with_tls(Settings(data_dir=tmp_path, tls_cert=cert), self_signed=False)
    made, note = _with_tls(Settings(data_dir=tmp_path, host="0.0.0.0"), self_signed=True)
    assert made.tls_cert == tmp_path / "tls" / "server.pem"
    assert str(tmp_path / "tls" / "ca.pem") in note
    assert "/driver" in note


def _handshake(client: ssl.SSLContext, server: ssl.SSLContext, name: str) -> None:
    """A TLS handshake in memory between ``client`` (checking ``name``) and ``server``."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server_in, server_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(to_client, to_server, server_hostname=name)
    s = server.wrap_bio(server_in, server_out, server_side=True)
    for _ in range(10):
        for side in (c, s):
            with contextlib.suppress(ssl.SSLWantReadError):
                side.do_handshake()
        server_in.write(to_server.read())
        to_client.write(server_out.read())
    assert c.version() is not None  # the handshake completed, the name checked
