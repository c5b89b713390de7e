"""Real local peers the channel adapters talk to in tests: an SMTP server, a Twilio-like API, a
webhook receiver. Each listens on a free loopback port and records what it received."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Received:
    """One message as the SMTP server got it: envelope and parsed content."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None


@dataclass
class SmtpSink:
    """An aiosmtpd server in its own thread; ``received`` holds every accepted message."""

    tls: str = "none"  # "none", "starttls" or "implicit"
    server_context: ssl.SSLContext | None = None
    users: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    port: int = 0

    def start(self) -> None:
        """Listen on a free loopback port."""
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if self.tls == "starttls":
            kwargs |= {"tls_context": self.server_context, "require_starttls": True}
        elif self.tls == "implicit":
            kwargs["ssl_context"] = self.server_context
        if self.users:
            kwargs |= {"authenticator": self._authenticate, "auth_required": True}
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            login, password = data.login.decode(), data.password.decode()
            if self.users.get(login) == password:
                return AuthResult(success=True, auth_data=login)
        return AuthResult(success=False, handled=False)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # Addresses at these domains are refused, for good (550) or for now (451).
        if address.endswith("@nowhere.example"):
            return "550 5.1.1 No such user"
        if address.endswith("@busy.example"):
            return "451 4.3.0 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data if isinstance(session.auth_data, str) else None
        self.received.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                message=parsed,
                login=login,
            )
        )
        return "250 Message accepted for delivery"


@dataclass
class Recorded:
    """One HTTP request as a peer received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        """The body as an urlencoded form."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


Answer = Callable[[Recorded], Response]


class HttpPeer:
    """A Starlette app under uvicorn on a free loopback port, in the test's event loop.

    Every request is recorded in ``requests`` and answered by ``answer`` (replaceable by tests).
    With ``tls_pem`` (a file holding the key and certificate chain) it speaks HTTPS.
    """

    def __init__(self, answer: Answer, *, tls_pem: str | None = None) -> None:
        self.answer = answer
        self.requests: list[Recorded] = []
        self.port = free_port()
        self.url = f"{'https' if tls_pem else 'http'}://127.0.0.1:{self.port}"
        app = Starlette(
            routes=[Route("/{path:path}", self._handle, methods=["GET", "POST", "PUT"])]
        )
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            ssl_certfile=tls_pem,
        )
        self._server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def record(self, request: Request) -> Recorded:
        """Read ``request`` and add it to ``requests``; it as recorded."""
        recorded = Recorded(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
        )
        self.requests.append(recorded)
        return recorded

    async def _handle(self, request: Request) -> Response:
        return self.answer(await self.record(request))

    async def __aenter__(self) -> HttpPeer:
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task


@dataclass
class TwilioApi:
    """Answers like Twilio's Messages API: 201 with a sid for a well-formed, authenticated POST.

    ``fail_with`` makes the next answers an error (status, Twilio code, message) instead.
    """

    account_sid: str
    auth_token: str
    fail_with: tuple[int, int, str] | None = None
    sent: int = 0

    def __call__(self, request: Recorded) -> Response:
        expected_path = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        if request.method != "POST" or request.path != expected_path:
            return self._error(404, 20404, "The requested resource was not found")
        basic = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if request.headers.get("authorization") != f"Basic {basic}":
            return self._error(401, 20003, "Authenticate")
        if self.fail_with is not None:
            return self._error(*self.fail_with)
        form = request.form
        if not form.get("To") or not form.get("Body"):
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return self._error(400, 21603, "A 'From' phone number is required.")
        self.sent += 1
        sid = f"SM{self.sent:032x}"
        return JSONResponse(
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": form["To"],
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form["Body"],
                "status": "queued" if form.get("From") else "accepted",
                "error_code": None,
                "error_message": None,
            },
            status_code=201,
        )

    def _error(self, status: int, code: int, message: str) -> Response:
        headers = {"Retry-After": "2"} if status == 429 else None
        body = {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
        return JSONResponse(body, status_code=status, headers=headers)


@dataclass
class WebhookReceiver:
    """Verifies each delivery with the ``standardwebhooks`` library, as an integration would.

    Answers ``status`` (204 by default) to a valid signature and 401 to any other; ``verified``
    holds the payloads that passed, ``refused`` the reasons of those that did not.
    """

    secret: str
    status: int = 204
    verified: list[Any] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    def __call__(self, request: Recorded) -> Response:
        try:
            payload = Webhook(self.secret).verify(request.body, request.headers)
        except WebhookVerificationError as exc:
            self.refused.append(str(exc))
            return Response("bad signature", status_code=401)
        self.verified.append(payload)
        return Response(b"" if self.status == 204 else b"answer", status_code=self.status)


class SilentServer:
    """Accepts TCP connections and never answers: a receiver that hangs."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> SilentServer:
        async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self._writers.append(writer)

        self._server = await asyncio.start_server(hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._writers:
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
