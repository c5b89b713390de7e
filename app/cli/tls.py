"""A local certificate authority and a server certificate for ``serve --tls-self-signed``.

Phones give the camera, geolocation and service workers only to secure contexts, so the driver
app needs HTTPS as soon as it is reached over the network. For a demo or a depot without a
domain name, ``serve`` makes its own authority: a CA certificate that is kept under the data
folder (a phone trusts it once, and it stays valid across restarts) and a server certificate
signed by it, renewed on every start, naming ``localhost``, this machine's name and its
addresses. The CA's key never leaves the data folder; the CA certificate is what a phone
installs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from app.process.urls import lan_address

CA_VALID_DAYS = 3650
SERVER_VALID_DAYS = 397
"""Browsers refuse server certificates valid for longer than 398 days."""
CA_NAME = "lastmile local CA"


@dataclass(frozen=True)
class LocalTls:
    """The files of a local authority: what ``serve`` listens with and what a phone trusts."""

    ca_cert: Path
    cert: Path
    key: Path
    names: tuple[str, ...]
    """The host names and addresses the server certificate is valid for."""


def local_names(host: str) -> tuple[str, ...]:
    """``localhost``, this machine's name and the addresses a phone could use to reach ``host``
    (every address of this machine when ``host`` listens on all of them)."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    if host in ("0.0.0.0", "::", ""):
        names.extend(_own_addresses())
    else:
        names.append(host)
    return tuple(dict.fromkeys(names))  # each once, in order


def _own_addresses() -> list[str]:
    found: list[str] = []
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        infos = []
    found.extend(str(info[4][0]) for info in infos)
    outward = lan_address()
    if outward is not None:
        found.append(outward)
    return found


def local_ca(folder: Path) -> Path:
    """Where :func:`ensure_local_tls` keeps its authority's certificate in ``folder``."""
    return folder / "ca.pem"


def ensure_local_tls(folder: Path, names: tuple[str, ...]) -> LocalTls:
    """The authority in ``folder`` (made on first use) and a fresh server certificate for
    ``names``; files are written with owner-only permissions where they hold a key."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_cert_path, ca_key_path = local_ca(folder), folder / "ca-key.pem"
    if ca_cert_path.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{ca_key_path}: expected an EC private key")
        ca_key = loaded
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _ca_certificate(ca_key)
        _write_key(ca_key_path, ca_key)
        ca_cert_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _server_certificate(key, ca_key, ca_cert, names)
    cert_path, key_path = folder / "server.pem", folder / "server-key.pem"
    _write_key(key_path, key)
    cert_path.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    return LocalTls(ca_cert=ca_cert_path, cert=cert_path, key=key_path, names=names)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _ca_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{CA_NAME} ({socket.gethostname()})"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "lastmile"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=CA_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    names: tuple[str, ...],
) -> x509.Certificate:
    alternatives: list[x509.GeneralName] = []
    for name in names:
        try:
            alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternatives.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=SERVER_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternatives), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def phone_steps(tls: LocalTls, base_url: str) -> str:
    """What to do once on each phone so that it trusts this server, for the console."""
    return "\n".join(
        [
            "",
            f"HTTPS with a local certificate authority: {tls.ca_cert}",
            f"  valid for {', '.join(tls.names)}",
            "  On each phone, once: copy that file to the phone (mail, cable, a chat to yourself),",
            "  Android: Settings > Security > Encryption & credentials > Install a certificate >",
            "    CA certificate, pick the file;",
            "  iPhone: open the file, install the profile (Settings > Profile Downloaded), then",
            "    Settings > General > About > Certificate Trust Settings, turn it on.",
            f"  Then open {base_url}/driver on the phone.",
        ]
    )
