"""The SMS senders against a local HTTP peer speaking Twilio's Messages API, and the pure parsing
of Twilio's status callbacks, inbound messages and request signatures."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from starlette.responses import JSONResponse, PlainTextResponse, Response

from adapters.errors import PermanentFailure, RetryableFailure
from adapters.sms import (
    CallbackError,
    TemplatedHttpConfig,
    TemplatedHttpSmsSender,
    TwilioConfig,
    TwilioSmsSender,
    keyword,
    parse_inbound,
    parse_status_callback,
    twilio_signature,
    valid_twilio_signature,
)
from app.process.server import sender_channels
from app.settings import Settings, SettingsError
from tests.adapters.peers import HttpPeer, Recorded, TwilioApi, free_port

ACCOUNT = "AC" + "0" * 32
TOKEN = "tw-auth-token-secret"


@pytest.fixture
async def twilio() -> AsyncIterator[tuple[HttpPeer, TwilioApi]]:
    """A running Twilio-like Messages API and its state."""
    api = TwilioApi(account_sid=ACCOUNT, auth_token=TOKEN)
    async with HttpPeer(api) as peer:
        yield peer, api


def _config(peer: HttpPeer, **kwargs: str) -> TwilioConfig:
    fields: dict[str, str] = {"from_number": "+15005550006"} | kwargs
    return TwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN, base_url=peer.url, **fields)  # type: ignore[arg-type]


async def test_twilio_send_posts_the_form_and_returns_sid_and_status(
    twilio: tuple[HttpPeer, TwilioApi],
) -> None:
    """A send POSTs To, From, Body and StatusCallback with Basic auth and returns Twilio's sid."""
    peer, _ = twilio
    config = _config(peer, status_callback_url="https://lm.example/hooks/twilio/status")
    async with TwilioSmsSender(config) as sender:
        receipt = await sender.send(
            to="+14155550100", body="Your parcel: ETA 14:10", idempotency_key="n1"
        )
    assert receipt.provider_id.startswith("SM")
    assert receipt.status == "queued"
    [request] = peer.requests
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.form == {
        "To": "+14155550100",
        "From": "+15005550006",
        "Body": "Your parcel: ETA 14:10",
        "StatusCallback": "https://lm.example/hooks/twilio/status",
    }


async def test_twilio_messaging_service_replaces_from(twilio: tuple[HttpPeer, TwilioApi]) -> None:
    """With a messaging service configured the form carries MessagingServiceSid and no From."""
    peer, _ = twilio
    config = TwilioConfig(
        account_sid=ACCOUNT, auth_token=TOKEN, messaging_service_sid="MG123", base_url=peer.url
    )
    async with TwilioSmsSender(config) as sender:
        receipt = await sender.send(to="+14155550100", body="hi", idempotency_key="n1")
    assert receipt.status == "accepted"
    assert peer.requests[0].form["MessagingServiceSid"] == "MG123"
    assert "From" not in peer.requests[0].form


async def test_twilio_error_answer_is_permanent_with_its_code(
    twilio: tuple[HttpPeer, TwilioApi],
) -> None:
    """A 400 with Twilio's error JSON becomes a permanent failure carrying the code and message."""
    peer, api = twilio
    api.fail_with = (400, 21211, "The 'To' number +1555 is not a valid phone number.")
    async with TwilioSmsSender(_config(peer)) as sender:
        with pytest.raises(PermanentFailure) as info:
            await sender.send(to="+1555", body="hi", idempotency_key="n1")
    assert info.value.status_code == 400
    assert info.value.code == "21211"
    assert "not a valid phone number" in str(info.value)


async def test_twilio_wrong_token_is_permanent(twilio: tuple[HttpPeer, TwilioApi]) -> None:
    """Credentials Twilio refuses (401) are a permanent failure, not something to retry."""
    peer, _ = twilio
    config = TwilioConfig(
        account_sid=ACCOUNT, auth_token="wrong", from_number="+15005550006", base_url=peer.url
    )
    async with TwilioSmsSender(config) as sender:
        with pytest.raises(PermanentFailure) as info:
            await sender.send(to="+14155550100", body="hi", idempotency_key="n1")
    assert info.value.code == "20003"


@pytest.mark.parametrize(
    ("status", "code"), [(429, 20429), (500, 20500), (503, 20503)], ids=["429", "500", "503"]
)
async def test_twilio_overload_and_server_errors_are_retryable(
    twilio: tuple[HttpPeer, TwilioApi], status: int, code: int
) -> None:
    """429 and 5xx answers are retryable, with Retry-After passed on when Twilio gives one."""
    peer, api = twilio
    api.fail_with = (status, code, "Too many requests or an internal error")
    async with TwilioSmsSender(_config(peer)) as sender:
        with pytest.raises(RetryableFailure) as info:
            await sender.send(to="+14155550100", body="hi", idempotency_key="n1")
    assert info.value.status_code == status
    assert info.value.retry_after_s == (2.0 if status == 429 else None)


async def test_twilio_unreachable_is_retryable() -> None:
    """A connection refused is a retryable failure."""
    config = TwilioConfig(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        from_number="+15005550006",
        base_url=f"http://127.0.0.1:{free_port()}",
    )
    async with TwilioSmsSender(config) as sender:
        with pytest.raises(RetryableFailure):
            await sender.send(to="+14155550100", body="hi", idempotency_key="n1")


def test_twilio_config_hides_the_token_and_needs_one_sender() -> None:
    """The auth token is not in the repr; From and MessagingServiceSid are exclusive."""
    config = TwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN, from_number="+1")
    assert TOKEN not in repr(config)
    assert TOKEN not in repr(TwilioSmsSender(config))
    with pytest.raises(ValueError, match="exactly one"):
        TwilioConfig(account_sid=ACCOUNT, auth_token=TOKEN)


async def test_templated_sender_renders_json_and_headers() -> None:
    """The templated sender fills $to, $body and $idempotency_key and reads the answer's id."""

    def answer(request: Recorded) -> Response:
        return JSONResponse({"data": {"id": "msg-77"}}, status_code=202)

    async with HttpPeer(answer) as peer:
        config = TemplatedHttpConfig(
            url=f"{peer.url}/v1/sms",
            headers={"Authorization": "Bearer k", "Idempotency-Key": "$idempotency_key"},
            body={"recipient": "$to", "message": "$body", "ref": "lastmile:$idempotency_key"},
            id_field="data.id",
        )
        sender = TemplatedHttpSmsSender(config)
        receipt = await sender.send(to="+3361234", body='He said "hi" $5', idempotency_key="n9")
        await sender.aclose()
    assert receipt.provider_id == "msg-77"
    [request] = peer.requests
    assert request.path == "/v1/sms"
    assert request.headers["idempotency-key"] == "n9"
    assert json.loads(request.body) == {
        "recipient": "+3361234",
        "message": 'He said "hi" $5',
        "ref": "lastmile:n9",
    }


async def test_templated_sender_form_body_and_error_classes() -> None:
    """A form body is urlencoded; a 422 is permanent and a 502 retryable."""
    answers = iter([PlainTextResponse("bad", 422), PlainTextResponse("down", 502)])
    async with HttpPeer(lambda _: next(answers)) as peer:
        config = TemplatedHttpConfig(
            url=peer.url, body={"to": "$to", "t": "$body"}, body_format="form"
        )
        sender = TemplatedHttpSmsSender(config)
        with pytest.raises(PermanentFailure):
            await sender.send(to="+1", body="a&b=c", idempotency_key="k")
        with pytest.raises(RetryableFailure):
            await sender.send(to="+1", body="a&b=c", idempotency_key="k")
        await sender.aclose()
    assert peer.requests[0].form == {"to": "+1", "t": "a&b=c"}


def test_templated_config_refuses_unknown_placeholders_and_hides_headers() -> None:
    """A template naming an unknown placeholder is refused; header values stay out of the repr."""
    with pytest.raises(ValueError, match=r"\$phone"):
        TemplatedHttpConfig(url="http://x", body={"to": "$phone"})
    config = TemplatedHttpConfig(url="http://x", headers={"Authorization": "Bearer sekrit"})
    assert "sekrit" not in repr(config)


async def test_the_settings_choose_the_templated_provider_and_the_sender_uses_it() -> None:
    """``LASTMILE_SMS_HTTP_*`` give the senders a templated adapter (its headers hidden from
    the settings' repr) that reaches the provider; a bad template, a body that is no JSON
    object of strings and two providers at once fail naming the variable."""
    async with HttpPeer(lambda _: JSONResponse({"id": "p-1"}, status_code=201)) as peer:
        env = {
            "LASTMILE_SMS_HTTP_URL": f"{peer.url}/send",
            "LASTMILE_SMS_HTTP_HEADERS": '{"X-Api-Key": "sekrit-key"}',
            "LASTMILE_SMS_HTTP_BODY": '{"dst": "$to", "msg": "$body"}',
            "LASTMILE_SMS_HTTP_BODY_FORMAT": "form",
            "LASTMILE_SMS_HTTP_ID_FIELD": "id",
        }
        settings = Settings.from_env(env)
        assert "sekrit-key" not in repr(settings)
        sms = sender_channels(settings).sms
        assert isinstance(sms, TemplatedHttpSmsSender)
        try:
            receipt = await sms.send(to="+3361234", body="On its way", idempotency_key="n1")
        finally:
            await sms.aclose()
    assert receipt.provider_id == "p-1"
    [request] = peer.requests
    assert (request.path, request.headers["x-api-key"]) == ("/send", "sekrit-key")
    assert request.form == {"dst": "+3361234", "msg": "On its way"}

    with pytest.raises(SettingsError, match=r"LASTMILE_SMS_HTTP_BODY: .*\$phone"):
        Settings.from_env(env | {"LASTMILE_SMS_HTTP_BODY": '{"dst": "$phone"}'})
    with pytest.raises(SettingsError, match="LASTMILE_SMS_HTTP_HEADERS: expected a JSON object"):
        Settings.from_env(env | {"LASTMILE_SMS_HTTP_HEADERS": '["X-Api-Key"]'})
    both = env | {
        "LASTMILE_TWILIO_ACCOUNT_SID": ACCOUNT,
        "LASTMILE_TWILIO_AUTH_TOKEN": TOKEN,
        "LASTMILE_TWILIO_FROM": "+15005550006",
    }
    with pytest.raises(SettingsError, match="LASTMILE_SMS_HTTP_URL: expected one SMS provider"):
        sender_channels(Settings.from_env(both))


@pytest.mark.parametrize("status", ["queued", "sent", "delivered", "failed", "undelivered"])
def test_status_callback_is_parsed(status: str) -> None:
    """Each status Twilio reports is parsed with its message sid, and errors carry their code."""
    form = {"MessageSid": "SM1", "MessageStatus": status, "AccountSid": ACCOUNT}
    if status in {"failed", "undelivered"}:
        form["ErrorCode"] = "30003"
    parsed = parse_status_callback(form)
    assert parsed.message_sid == "SM1"
    assert parsed.status == status
    assert parsed.error_code == ("30003" if status in {"failed", "undelivered"} else None)
    assert parsed.final == (status in {"delivered", "failed", "undelivered"})


def test_status_callback_without_sid_is_refused() -> None:
    """A callback without MessageSid raises an error naming the field."""
    with pytest.raises(CallbackError) as info:
        parse_status_callback({"MessageStatus": "sent"})
    assert info.value.field == "MessageSid"


@pytest.mark.parametrize(
    "body", ["STOP", "stop", " Stop. ", "STOPALL", "unsubscribe", "CANCEL", "end", "QUIT!"]
)
def test_opt_out_words(body: str) -> None:
    """Twilio's opt-out words, alone in a message, opt the sender out."""
    inbound = parse_inbound(
        {"MessageSid": "SM2", "From": "+14155550100", "To": "+1500", "Body": body}
    )
    assert inbound.keyword == "opt_out"
    assert inbound.from_number == "+14155550100"


@pytest.mark.parametrize("body", ["START", "yes", "Unstop"])
def test_opt_in_words(body: str) -> None:
    """START, YES and UNSTOP opt back in."""
    assert keyword(body) == "opt_in"


@pytest.mark.parametrize(
    "body", ["please stop texting me", "Leave it at the back door", "", "STOP IT"]
)
def test_other_messages_are_not_keywords(body: str) -> None:
    """A keyword inside a longer message is just a message (instructions, questions)."""
    assert keyword(body) is None


URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+14158675309",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
}


def test_signature_matches_twilios_published_example() -> None:
    """Twilio's documented example (token 12345) validates, in any parameter order."""
    assert twilio_signature(URL, PARAMS, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    shuffled = list(reversed(PARAMS.items()))
    assert valid_twilio_signature(URL, shuffled, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "12345")


def test_signature_with_repeated_parameters() -> None:
    """Repeated fields are signed sorted by value, duplicates once, as Twilio's libraries do."""
    pairs = [
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),
        ("Digits", "1234"),
        ("Digits", "1234"),
    ]
    assert valid_twilio_signature(URL, pairs, "IK+Dwps556ElfBT0I3Rgjkr1wJU=", "12345")


@pytest.mark.parametrize(
    ("url", "params", "signature", "token"),
    [
        (URL, PARAMS | {"Digits": "9999"}, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "12345"),
        (URL + "&x=1", PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "12345"),
        (URL, PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "54321"),
        (URL, PARAMS, "", "12345"),
        (URL, PARAMS, "invalid 王", "12345"),
    ],
    ids=["tampered-param", "other-url", "other-token", "empty", "non-ascii"],
)
def test_signature_refuses_any_change(
    url: str, params: dict[str, str], signature: str, token: str
) -> None:
    """Changing a parameter, the URL, the token or the signature fails validation."""
    assert not valid_twilio_signature(url, params, signature, token)
