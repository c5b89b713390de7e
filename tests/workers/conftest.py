"""Fixtures shared by the workers' tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.adapters.peers import SmtpSink


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    """A real SMTP server (aiosmtpd) recording every message it accepts."""
    server = SmtpSink()
    server.start()
    yield server
    server.stop()
