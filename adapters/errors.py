"""Errors the channel adapters (email, SMS, webhooks) raise, each with the fields that explain it.

Hierarchy::

    ChannelError                base class; ``channel`` and ``detail`` say where and what
    ├── PermanentFailure        the provider refused this message; sending it again will not help
    │   └── TargetRefused       the target address is not allowed (loopback, private, ... : SSRF)
    └── RetryableFailure        the provider or the network failed for now (5xx, 429, timeout);
                                ``retry_after_s`` carries the provider's hint when it gave one

A sender retries :class:`RetryableFailure` with backoff and records :class:`PermanentFailure`
as final. ``status_code`` and ``code`` are the provider's own (HTTP status, Twilio error code,
SMTP reply code) when there was one.
"""

from __future__ import annotations


class ChannelError(Exception):
    """Base class of every error a channel adapter raises on purpose."""

    def __init__(
        self,
        channel: str,
        detail: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(f"{channel}: {detail}")
        self.channel = channel
        self.detail = detail
        self.status_code = status_code
        self.code = code


class PermanentFailure(ChannelError):
    """The provider refused the message for good (bad number, bad address, rejected request)."""


class TargetRefused(PermanentFailure):
    """The target resolves to an address the settings do not allow (``address`` names it)."""

    def __init__(self, channel: str, detail: str, *, address: str) -> None:
        super().__init__(channel, detail)
        self.address = address


class RetryableFailure(ChannelError):
    """The send failed for now; trying again later may succeed."""

    def __init__(
        self,
        channel: str,
        detail: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(channel, detail, status_code=status_code, code=code)
        self.retry_after_s = retry_after_s


def retry_after_s(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds; None when absent or an HTTP date (rare from these
    providers, and the sender's own backoff is a fine fallback)."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
