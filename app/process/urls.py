"""Where this server is reached: by people (links in banners and messages) and by the
simulated fleet running in its own process.

One reading of the listener's scheme (HTTPS when a certificate is configured), host and port,
so a banner, a customer's tracking link and the simulator never disagree about it.
"""

from __future__ import annotations

import socket

from app.settings import Settings

ALL_INTERFACES = ("0.0.0.0", "::", "")


def lan_address() -> str | None:
    """The IPv4 address of the interface that routes outwards (what a phone on the same
    network usually reaches), or None; no packet is sent by a UDP socket's connect."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def scheme_of(settings: Settings) -> str:
    """``https`` when the API listens with a certificate, else ``http``."""
    return "https" if settings.tls_cert is not None else "http"


def base_url(settings: Settings) -> str:
    """Where people reach the API: the public URL, or this listener (for all interfaces, this
    machine's address on its network, which phones there reach, else its name)."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    host = settings.host
    if host in ALL_INTERFACES:
        host = lan_address() or socket.gethostname()
    elif ":" in host:
        host = f"[{host}]"
    return f"{scheme_of(settings)}://{host}:{settings.port}"


def loopback_url(settings: Settings) -> str:
    """Where a client on this machine reaches the API: the loopback interface, by the name a
    local certificate is made for when it listens with one."""
    host = settings.host
    if settings.tls_cert is not None:
        host = "localhost"
    elif host in ALL_INTERFACES:
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"{scheme_of(settings)}://{host}:{settings.port}"
