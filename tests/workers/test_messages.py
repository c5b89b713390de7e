"""Message templates, as pure tests: rendering with Babel, escaping, and refusal at save time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from schemas.notifications import TEMPLATE_KINDS, TemplateIn, template_channels
from workers.messages import (
    DEFAULT_LANGUAGES,
    DEFAULTS,
    LIMITS,
    Facts,
    Reader,
    TemplateRefused,
    check,
    default,
    known_language,
    next_step,
    render,
    sample_facts,
)

AT = datetime(2026, 11, 24, 13, 5, tzinfo=UTC)
FACTS = Facts(
    org_name="Acme",
    order_ref="A-1001",
    address="1 Main St",
    window_lower=AT,
    window_likely=AT + timedelta(minutes=15),
    window_upper=AT + timedelta(minutes=30),
    tracking_url="https://track.example.com/t/abc",
    at=AT,
)


def refused(text: str, **parts: str) -> TemplateRefused:
    with pytest.raises(TemplateRefused) as caught:
        check("en_route", "sms" if not parts else "email", "en", TemplateIn(text=text, **parts))
    return caught.value


def test_every_kind_and_channel_has_a_default_in_english_and_german() -> None:
    """Built-in defaults exist for every kind × channel in English and German, and pass the
    same check a stored template must pass."""
    assert set(DEFAULT_LANGUAGES) >= {"en", "de"}
    for language in ("en", "de"):
        for kind in TEMPLATE_KINDS:
            for channel in template_channels(kind):
                template = DEFAULTS[(kind, channel, language)]
                check(kind, channel, language, TemplateIn(
                    text=template.text, subject=template.subject, html=template.html
                ))  # fmt: skip


def test_times_are_in_the_organisations_zone_and_the_customers_locale() -> None:
    """The en-route window shows in Berlin time, as a German and as an American reader writes
    it, and the message carries the full tracking link."""
    german = render(
        default("en_route", "sms", "de"), FACTS, Reader(timezone="Europe/Berlin", language="de")
    )
    assert "14:05–14:35 Uhr" in german.text
    assert "https://track.example.com/t/abc" in german.text
    english = render(
        default("en_route", "sms", "en"), FACTS, Reader(timezone="Europe/Berlin", language="en")
    )
    assert "2:05\u202fPM–2:35\u202fPM" in english.text or "2:05 PM–2:35 PM" in english.text


def test_the_en_route_email_has_the_link_as_a_button() -> None:
    """The HTML of the en-route email links the tracking page as a button."""
    mail = render(default("en_route", "email", "en"), FACTS, Reader())
    assert mail.subject == "Your Acme delivery is on its way"
    assert mail.html is not None
    assert '<a href="https://track.example.com/t/abc"' in mail.html
    assert "Track your delivery</a>" in mail.html


def test_a_language_without_defaults_falls_back_to_its_base_and_then_english() -> None:
    """de-AT uses the German defaults, fr the English ones (with French times)."""
    assert default("delivered", "sms", "de-AT").language == "de"
    assert default("delivered", "sms", "fr").language == "en"
    assert known_language("de-AT")
    assert not known_language("xx")


def test_failed_tells_the_reason_and_what_happens_next_in_the_customers_language() -> None:
    """A failed delivery names the reason and the next step, the default one translated."""
    facts = Facts(
        org_name="Acme",
        order_ref="A-1",
        address="x",
        reason="nobody home",
        next_step=next_step("We will contact you to arrange another delivery.", "de"),
    )
    text = render(default("failed", "sms", "de"), facts, Reader(language="de")).text
    assert "nobody home" in text
    assert "Wir melden uns" in text
    assert next_step("Pick it up at the depot.", "de") == "Pick it up at the depot."


def test_hostile_customer_text_is_escaped_in_html_and_plain_in_text() -> None:
    """A customer's address with markup is escaped in HTML and kept as typed in plain text."""
    hostile = Facts(
        org_name="Acme",
        order_ref="A-1",
        address='<script>alert("x")</script>',
        reason="<b>dog</b>",
        at=AT,
    )
    template = default("alert_failed", "email", "en")
    mail = render(template, hostile, Reader())
    assert mail.html is not None
    assert "<script>" not in mail.html
    assert "&lt;script&gt;" in mail.html
    assert '<script>alert("x")</script>' in mail.text


def test_a_subject_is_one_line() -> None:
    """Line breaks in a subject become spaces: a message never carries a header of its own."""
    facts = Facts(org_name="Acme\r\nBcc: x@example.com", order_ref="A-1", address="x", at=AT)
    template = TemplateIn(subject="{{ org.name }}", text="hello")
    check("delivered", "email", "en", template)
    mail = render(template, facts, Reader())
    assert mail.subject == "Acme Bcc: x@example.com"


def test_a_syntax_error_is_refused_naming_the_part_and_line() -> None:
    """A template that does not parse is refused with the part and the line."""
    error = refused("fine", subject="ok", html="<p>\n{% if %}</p>")
    assert error.part == "html"
    assert "TemplateSyntaxError (line 2)" in error.reason


def test_an_unknown_variable_is_refused() -> None:
    """A variable no message has is refused (StrictUndefined), not rendered empty."""
    error = refused("Hello {{ customer.first_name }}")
    assert error.part == "text"
    assert "'customer' is undefined" in error.reason


def test_a_window_used_without_a_guard_is_refused_for_kinds_that_may_lack_one() -> None:
    """En route may come without a window, so a template that always prints one is refused;
    running late always has one, so there it is accepted."""
    text = "Expected {{ window.earliest|time }}"
    with pytest.raises(TemplateRefused, match="'None' has no attribute 'earliest'"):
        check("en_route", "sms", "en", TemplateIn(text=text))
    check("running_late", "sms", "en", TemplateIn(text=text))


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ ''.__class__.__mro__ }}", "unsafe"),
        ("{{ order.ref|safe }}", "No filter named 'safe'"),
        ("{% for i in range(1000) %}x{% endfor %}", "range() of more than 100"),
        ("{{ 'x' * 100000 }}", "'*' making more than"),
        ("{{ 9 ** 99 }}", "'**'"),
        ("{{ 'x'.center(1000000) }}", "a call with a number above"),
        ("{% for a in 'ab' %}{% for b in 'cd' %}{% endfor %}{% endfor %}", "a loop inside a loop"),
        ("{% macro m() %}x{% endmacro %}{{ m() }}", "macros"),
        ("{% include 'other' %}", "includes"),
    ],
)
def test_sandbox_violations_are_refused(source: str, reason: str) -> None:
    """What could escape the sandbox, or make a renderer loop or allocate for long, is refused
    when the template is saved."""
    error = refused(source)
    assert error.part == "text"
    assert reason in error.reason


def test_too_long_an_output_is_refused() -> None:
    """An SMS template rendering past the message limit is refused."""
    error = refused("{% for i in range(100) %}{{ 'x' * 100 }}{% endfor %}")
    assert f"at most {LIMITS[('sms', 'text')]} characters" in error.reason


def test_parts_must_fit_the_channel() -> None:
    """An SMS has text only, an email needs a subject, and alerts go by email only."""
    with pytest.raises(TemplateRefused, match="an SMS has only text"):
        check("en_route", "sms", "en", TemplateIn(text="x", html="<p>x</p>"))
    with pytest.raises(TemplateRefused, match="needs a subject"):
        check("en_route", "email", "en", TemplateIn(text="x"))
    with pytest.raises(TemplateRefused, match="email only"):
        check("alert_failed", "sms", "en", TemplateIn(text="x"))


def test_every_sample_shape_of_a_kind_is_rendered() -> None:
    """En route is checked with and without a window and a link; delivered never has a window."""
    shapes = sample_facts("en_route")
    assert any(f.window_lower is None for f in shapes)
    assert any(f.tracking_url is None for f in shapes)
    assert all(f.window_lower is None for f in sample_facts("delivered"))
