"""Messages: notification templates rendered for people, and checked before they are stored.

Pure: no I/O, no clock. :func:`render` turns a template (an organisation's own, or the built-in
default of :data:`DEFAULTS`) and the :class:`Facts` of one message into its text (and, for
email, its subject and HTML). :func:`check` renders a template against sample facts for its
kind, with and without the parts a message may lack, so a template that would fail when sent
is refused when it is saved.

The sandbox (Jinja2's :class:`~jinja2.sandbox.SandboxedEnvironment`) is strict:

* ``StrictUndefined``: a variable that is not there is an error, not an empty string;
* HTML is autoescaped (a customer's address with ``<script>`` in it shows as text), the
  ``safe`` filter is not offered, and SMS, text and subjects are not escaped (they are not
  HTML); a subject is one line;
* only the filters of :data:`FILTERS`, ``range`` up to :data:`MAX_RANGE`, no loop inside a
  loop, no macros, includes, imports or inheritance, ``*``, ``**`` and ``+`` refused when their
  result would be large, and a method call with a large number refused: so no template can
  make a renderer loop or allocate for long;
* the output is cut off, as an error, once it exceeds the part's limit (:data:`LIMITS`).

Times are formatted with Babel in the organisation's time zone and the customer's locale:
``{{ window.earliest|time }}`` is ``14:10`` in ``de`` and ``2:10 PM`` in ``en``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, format_time
from jinja2 import StrictUndefined, TemplateError, Undefined, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from schemas.notifications import (
    DEFAULT_FAILED_NEXT_STEP,
    CustomerChannel,
    Rendered,
    Template,
    TemplateIn,
    TemplateKind,
    template_channels,
)

Part = Literal["subject", "text", "html"]

MAX_RANGE: Final = 100
MAX_VALUE_CHARS: Final = 10_000
"""The largest string or list ``*`` and ``+`` may make, and the largest number a call takes."""
LIMITS: Final[dict[tuple[CustomerChannel, Part], int]] = {
    ("sms", "text"): 1600,  # Twilio's limit for one message body
    ("email", "subject"): 200,
    ("email", "text"): 20_000,
    ("email", "html"): 100_000,
}
"""The most characters a rendered part may have."""
FILTERS: Final = frozenset(
    {
        "capitalize", "d", "default", "e", "escape", "first", "join", "last", "length",
        "lower", "replace", "round", "string", "title", "trim", "upper",
    }
)  # fmt: skip
"""Jinja2's filters a template may use, besides ``time``, ``date`` and ``datetime``."""


class TemplateRefused(ValueError):
    """A template that does not render: ``part`` (``subject``, ``text``, ``html``) and why."""

    def __init__(self, part: Part, reason: str) -> None:
        super().__init__(f"{part}: {reason}")
        self.part = part
        self.reason = reason


@dataclass(frozen=True, kw_only=True, slots=True)
class Facts:
    """What one message can tell, as its template sees it (see :func:`context`).

    Strings a customer or an integration typed (``customer_name``, ``address``, ``reason``)
    are untrusted: HTML escapes them, and they are cut to a length here.
    """

    org_name: str
    order_ref: str
    address: str
    customer_name: str | None = None
    window_lower: datetime | None = None
    window_likely: datetime | None = None
    window_upper: datetime | None = None
    tracking_url: str | None = None
    proof_url: str | None = None
    """Where the customer sees the proof of delivery (the tracking page, which shows the photo
    through a short-lived signed link): only for a delivery, where the organisation shares it."""
    reason: str | None = None
    next_step: str = DEFAULT_FAILED_NEXT_STEP
    late_min: int | None = None
    at: datetime = field(default_factory=lambda: datetime.fromtimestamp(0, UTC))
    driver_id: int | None = None
    stop_id: int | None = None
    route_id: int | None = None
    expected_order_id: int | None = None
    dwell_min: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Reader:
    """Where the reader is: the organisation's time zone and the customer's locale."""

    timezone: str = "UTC"
    language: str = "en"


NEXT_STEPS: Final = {
    "en": DEFAULT_FAILED_NEXT_STEP,
    "de": "Wir melden uns bei Ihnen, um eine neue Zustellung zu vereinbaren.",
}
"""The default of what happens after a failed delivery, per language."""


def next_step(configured: str, language: str) -> str:
    """What the customer is told happens next: the organisation's text, or the default in
    the customer's language when the organisation kept the default."""
    if configured != DEFAULT_FAILED_NEXT_STEP:
        return configured
    return NEXT_STEPS.get(language.split("-")[0], DEFAULT_FAILED_NEXT_STEP)


def _cut(text: str | None, chars: int = 500) -> str | None:
    return None if text is None else text[:chars]


def context(facts: Facts) -> dict[str, Any]:
    """The variables a template sees: ``org.name``, ``order.ref``, ``order.address``,
    ``order.customer_name``, ``window.earliest``/``likely``/``latest`` (or ``window`` none),
    ``tracking_url``, ``proof_url`` (a delivery's proof, where the organisation shares it),
    ``reason``, ``next_step``, ``late_min``, ``at`` and, for alerts, ``alert.driver_id``,
    ``route_id``, ``stop_id``, ``expected_order_id``, ``dwell_min``."""
    window = None
    if facts.window_lower is not None and facts.window_upper is not None:
        window = {
            "earliest": facts.window_lower,
            "likely": facts.window_likely or facts.window_lower,
            "latest": facts.window_upper,
        }
    return {
        "org": {"name": _cut(facts.org_name, 200)},
        "order": {
            "ref": _cut(facts.order_ref, 100),
            "address": _cut(facts.address),
            "customer_name": _cut(facts.customer_name, 200),
        },
        "window": window,
        "tracking_url": facts.tracking_url,
        "proof_url": facts.proof_url,
        "reason": _cut(facts.reason),
        "next_step": _cut(facts.next_step),
        "late_min": facts.late_min,
        "at": facts.at,
        "alert": {
            "driver_id": facts.driver_id,
            "route_id": facts.route_id,
            "stop_id": facts.stop_id,
            "expected_order_id": facts.expected_order_id,
            "dwell_min": facts.dwell_min,
        },
    }


# --- the sandbox -------------------------------------------------------------------------------


def _too_big(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return abs(value) > MAX_VALUE_CHARS
    return False


def _made_size(op: str, left: object, right: object) -> int:
    """How many items ``left op right`` would make of a string or list (0: not one)."""
    sized = (str, list, tuple)
    if op == "*" and isinstance(left, sized) and isinstance(right, int):
        return len(left) * right
    if op == "*" and isinstance(right, sized) and isinstance(left, int):
        return len(right) * left
    if op == "+" and isinstance(left, sized) and isinstance(right, sized):
        return len(left) + len(right)
    return 0


class _Sandbox(SandboxedEnvironment):
    """Jinja2's sandbox with the size limits of the module's docstring."""

    intercepted_binops = frozenset({"*", "**", "+"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**" and (_too_big(left) or not isinstance(right, int) or abs(right) > 64):
            raise SecurityError(f"'**' with {right!r} is refused (at most 64)")
        if op in ("*", "+") and _made_size(op, left, right) > MAX_VALUE_CHARS:
            raise SecurityError(f"{op!r} making more than {MAX_VALUE_CHARS} items is refused")
        return super().call_binop(context, op, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if any(_too_big(a) for a in (*args, *kwargs.values())):
            raise SecurityError(f"a call with a number above {MAX_VALUE_CHARS} is refused")
        return SandboxedEnvironment.call(__self, __context, __obj, *args, **kwargs)


def _limited_range(*args: int) -> range:
    made = range(*args)
    if len(made) > MAX_RANGE:
        raise SecurityError(f"range() of more than {MAX_RANGE} items is refused")
    return made


@lru_cache(maxsize=1024)
def zone_of(name: str) -> ZoneInfo:
    """The time zone named ``name``; UTC when this system does not know it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


@lru_cache(maxsize=1024)
def locale_of(language: str) -> Locale:
    """The Babel locale of a language tag (``de``, ``en-GB``); English when Babel has none."""
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale("en")


def known_language(language: str) -> bool:
    """True when Babel knows ``language`` (``de``, ``en-GB``, ``pt-BR``)."""
    try:
        Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return False
    return True


_READER: Final = "_reader"
"""The context variable the time filters read the reader from."""


def _reader_of(context: Any) -> tuple[ZoneInfo, Locale]:
    reader = context.get(_READER)
    if not isinstance(reader, Reader):
        reader = Reader()
    return zone_of(reader.timezone), locale_of(reader.language)


def _aware(value: Any) -> datetime:
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    if not isinstance(value, datetime):
        raise TypeError(f"expected a time, got {type(value).__name__}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@pass_context
def _as_time(context: Any, value: Any) -> str:
    zone, locale = _reader_of(context)
    return str(format_time(_aware(value), format="short", tzinfo=zone, locale=locale))


@pass_context
def _as_date(context: Any, value: Any) -> str:
    zone, locale = _reader_of(context)
    return str(format_date(_aware(value).astimezone(zone), format="medium", locale=locale))


@pass_context
def _as_datetime(context: Any, value: Any) -> str:
    zone, locale = _reader_of(context)
    return str(format_datetime(_aware(value), format="short", tzinfo=zone, locale=locale))


@cache
def _environment(autoescape: bool) -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, autoescape=autoescape, keep_trailing_newline=False)
    env.filters = {name: f for name, f in env.filters.items() if name in FILTERS}
    env.filters.update(time=_as_time, date=_as_date, datetime=_as_datetime)
    env.globals = {"range": _limited_range}
    return env


_REFUSED_NODES: Final = {
    nodes.Macro: "macros",
    nodes.CallBlock: "call blocks",
    nodes.Include: "includes",
    nodes.Import: "imports",
    nodes.FromImport: "imports",
    nodes.Extends: "template inheritance",
    nodes.Block: "blocks",
}


def _check_shape(tree: nodes.Template) -> None:
    """Refuse what the sandbox does not bound: see the module's docstring."""
    for kind, what in _REFUSED_NODES.items():
        if tree.find(kind) is not None:
            raise SecurityError(f"{what} are not allowed in a notification template")
    for loop in tree.find_all(nodes.For):
        inner = (*loop.body, *loop.else_)
        if loop.recursive or any(
            isinstance(n, nodes.For) or n.find(nodes.For) is not None for n in inner
        ):
            raise SecurityError("a loop inside a loop is not allowed in a notification template")


@lru_cache(maxsize=1024)  # bounded: organisations' templates change while a worker runs
def _compiled(source: str, autoescape: bool) -> Any:
    env = _environment(autoescape)
    _check_shape(env.parse(source))
    return env.from_string(source)


def render_part(source: str, values: Mapping[str, Any], *, html: bool, limit: int) -> str:
    """One template part rendered; :class:`jinja2.TemplateError` (its ``SecurityError``
    included) or ``ValueError`` for output longer than ``limit``."""
    template = _compiled(source, html)
    out: list[str] = []
    size = 0
    for chunk in template.generate(values):
        size += len(chunk)
        if size > limit:
            raise ValueError(f"expected at most {limit} characters of output, got more")
        out.append(chunk)
    return "".join(out).strip()


def render(template: Template | TemplateIn, facts: Facts, reader: Reader) -> Rendered:
    """``template`` rendered for ``facts`` as ``reader`` reads; :class:`TemplateRefused` naming
    the part that failed and why."""
    channel: CustomerChannel = (
        template.channel if isinstance(template, Template) else _channel_of(template)
    )
    values = context(facts) | {_READER: reader}
    parts: dict[Part, str | None] = {"subject": None, "text": None, "html": None}
    sources: dict[Part, str | None] = {
        "subject": template.subject,
        "text": template.text,
        "html": template.html,
    }
    for part, source in sources.items():
        if source is None:
            continue
        limit = LIMITS.get((channel, part))
        if limit is None:
            raise TemplateRefused(part, f"an {channel} message has no {part}")
        try:
            rendered = render_part(source, values, html=part == "html", limit=limit)
        except SecurityError as exc:
            raise TemplateRefused(part, f"not allowed: {exc}") from None
        except TemplateError as exc:
            line = getattr(exc, "lineno", None)
            where = f" (line {line})" if line else ""
            raise TemplateRefused(part, f"{type(exc).__name__}{where}: {exc}") from None
        except (ValueError, TypeError, ArithmeticError, LookupError, RecursionError) as exc:
            raise TemplateRefused(part, f"{type(exc).__name__}: {exc}") from None
        if part == "subject":
            rendered = " ".join(rendered.split())  # one header line, never a header injection
        parts[part] = rendered
    if not parts["text"]:
        raise TemplateRefused("text", "expected some text, got an empty message")
    return Rendered(text=parts["text"] or "", subject=parts["subject"], html=parts["html"])


def _channel_of(template: TemplateIn) -> CustomerChannel:
    return "email" if template.subject is not None or template.html is not None else "sms"


# --- checking a template before it is stored ----------------------------------------------------

_SAMPLE_AT: Final = datetime(2026, 11, 24, 13, 5, tzinfo=UTC)


def sample_facts(kind: TemplateKind) -> list[Facts]:
    """The facts a template of ``kind`` must render: each shape a real message of that kind
    can take (a window or none; a tracking link or none)."""
    full = Facts(
        org_name="Acme Deliveries",
        order_ref="A-1001",
        address="1 Main Street, Springfield",
        customer_name="Alex Doe",
        window_lower=_SAMPLE_AT,
        window_likely=_SAMPLE_AT + timedelta(minutes=15),
        window_upper=_SAMPLE_AT + timedelta(minutes=30),
        tracking_url="https://track.example.com/t/sample-token-0000",
        reason="nobody was home",
        late_min=25,
        at=_SAMPLE_AT,
        driver_id=7,
        stop_id=31,
        route_id=12,
        expected_order_id=41,
        dwell_min=3,
    )
    bare = Facts(
        org_name=full.org_name, order_ref=full.order_ref, address=full.address, at=_SAMPLE_AT
    )
    shapes: dict[TemplateKind, list[Facts]] = {
        "en_route": [full, _without_window(full), _without_link(full)],
        "approaching": [full, _without_window(full), _without_link(full)],
        "delivered": [
            _replace(_without_window(full), proof_url=full.tracking_url),
            _without_window(full),
            _without_link(_without_window(full)),
        ],
        "failed": [_without_window(full), _without_link(_without_window(full))],
        "running_late": [full, _without_link(full)],
        "eta_changed": [full, _without_link(full)],
        "alert_out_of_sequence": [_without_link(full), bare],
        "alert_running_late": [_without_link(full), bare],
        "alert_failed": [_without_link(_without_window(full)), bare],
    }
    return shapes[kind]


def _without_window(facts: Facts) -> Facts:
    return _replace(facts, window_lower=None, window_likely=None, window_upper=None)


def _without_link(facts: Facts) -> Facts:
    return _replace(facts, tracking_url=None, proof_url=None, customer_name=None)


def _replace(facts: Facts, **changes: Any) -> Facts:
    return dataclasses.replace(facts, **changes)


def check(
    kind: TemplateKind, channel: CustomerChannel, language: str, template: TemplateIn
) -> None:
    """Raise :class:`TemplateRefused` unless ``template`` renders every sample of its kind,
    in ``language``: the parts its channel has (an SMS has no subject or HTML, an email needs
    a subject) and within the limits."""
    if channel not in template_channels(kind):
        raise TemplateRefused("text", f"{kind} messages go by email only, not by {channel}")
    if channel == "sms":
        if template.subject is not None:
            raise TemplateRefused("subject", "an SMS has only text")
        if template.html is not None:
            raise TemplateRefused("html", "an SMS has only text")
    elif template.subject is None:
        raise TemplateRefused("subject", "an email needs a subject")
    typed = Template(
        kind=kind,
        channel=channel,
        language=language,
        text=template.text,
        subject=template.subject,
        html=template.html,
        custom=True,
    )
    for facts in sample_facts(kind):
        for zone in ("UTC", "Pacific/Kiritimati"):
            render(typed, facts, Reader(timezone=zone, language=language))


# --- the built-in defaults -------------------------------------------------------------------


def default(kind: TemplateKind, channel: CustomerChannel, language: str) -> Template:
    """The built-in template of ``kind`` and ``channel`` in ``language``, or in its base
    language (``de`` for ``de-AT``), or in English."""
    for tag in (language, language.split("-")[0], "en"):
        found = DEFAULTS.get((kind, channel, tag))
        if found is not None:
            return found
    raise KeyError((kind, channel, language))


_WINDOW = {
    "en": "{{ window.earliest|time }}–{{ window.latest|time }}",
    "de": "{{ window.earliest|time }}–{{ window.latest|time }} Uhr",
}
_WORDS: dict[str, dict[str, tuple[str, str]]] = {
    # kind: (subject, text); the subject is also the SMS's opening.
    "en": {
        "en_route": (
            "Your {{ org.name }} delivery is on its way",
            "Your delivery {{ order.ref }} is on its way{% if window %}, expected {W}{% endif %}.",
        ),
        "approaching": (
            "Your {{ org.name }} delivery is nearly there",
            "Your driver is nearly there with {{ order.ref }}{% if window %}, expected by"
            " {{ window.latest|time }}{% endif %}.",
        ),
        "delivered": (
            "Your {{ org.name }} delivery has arrived",
            "Your delivery {{ order.ref }} was delivered at {{ at|time }}. Thank you!",
        ),
        "failed": (
            "We could not deliver your {{ org.name }} order",
            "We could not deliver {{ order.ref }}{% if reason %}: {{ reason }}{% endif %}."
            " {{ next_step }}",
        ),
        "running_late": (
            "Your {{ org.name }} delivery is running late",
            "Sorry, your delivery {{ order.ref }} is running late. New expected time: {W}.",
        ),
        "eta_changed": (
            "New time for your {{ org.name }} delivery",
            "The expected time of your delivery {{ order.ref }} has changed: {W}.",
        ),
        "alert_out_of_sequence": (
            "Out of sequence: order {{ order.ref }}",
            "Driver {{ alert.driver_id }} stayed{% if alert.dwell_min is not none %}"
            " {{ alert.dwell_min }} min{% endif %} at the stop of order {{ order.ref }}"
            " ({{ order.address }}) at {{ at|time }} while another stop"
            "{% if alert.expected_order_id is not none %} (order id"
            " {{ alert.expected_order_id }}){% endif %} was next.",
        ),
        "alert_running_late": (
            "Running late: order {{ order.ref }}",
            "Order {{ order.ref }} ({{ order.address }}) is running late"
            "{% if late_min is not none %} by {{ late_min }} min{% endif %}"
            "{% if window %}; expected {W}{% endif %}.",
        ),
        "alert_failed": (
            "Delivery failed: order {{ order.ref }}",
            "Order {{ order.ref }} ({{ order.address }}) could not be delivered at {{ at|time }}"
            "{% if reason %}: {{ reason }}{% endif %}.",
        ),
    },
    "de": {
        "en_route": (
            "Ihre Lieferung von {{ org.name }} ist unterwegs",
            "Ihre Lieferung {{ order.ref }} ist unterwegs{% if window %}, erwartet {W}{% endif %}.",
        ),
        "approaching": (
            "Ihre Lieferung von {{ org.name }} ist gleich da",
            "Ihr Fahrer ist gleich mit {{ order.ref }} bei Ihnen{% if window %}, spätestens"
            " {{ window.latest|time }} Uhr{% endif %}.",
        ),
        "delivered": (
            "Ihre Lieferung von {{ org.name }} ist angekommen",
            "Ihre Lieferung {{ order.ref }} wurde um {{ at|time }} Uhr zugestellt. Vielen Dank!",
        ),
        "failed": (
            "Wir konnten Ihre Bestellung bei {{ org.name }} nicht zustellen",
            "Wir konnten {{ order.ref }} nicht zustellen{% if reason %}: {{ reason }}{% endif %}."
            " {{ next_step }}",
        ),
        "running_late": (
            "Ihre Lieferung von {{ org.name }} verspätet sich",
            "Ihre Lieferung {{ order.ref }} verspätet sich leider. Neue erwartete Zeit: {W}.",
        ),
        "eta_changed": (
            "Neue Zeit für Ihre Lieferung von {{ org.name }}",
            "Die erwartete Zeit Ihrer Lieferung {{ order.ref }} hat sich geändert: {W}.",
        ),
        "alert_out_of_sequence": (
            "Außer der Reihe: Auftrag {{ order.ref }}",
            "Fahrer {{ alert.driver_id }} hielt{% if alert.dwell_min is not none %}"
            " {{ alert.dwell_min }} min{% endif %} um {{ at|time }} am Stopp von Auftrag"
            " {{ order.ref }} ({{ order.address }}), obwohl ein anderer Stopp"
            "{% if alert.expected_order_id is not none %} (Auftrags-Id"
            " {{ alert.expected_order_id }}){% endif %} an der Reihe war.",
        ),
        "alert_running_late": (
            "Verspätung: Auftrag {{ order.ref }}",
            "Auftrag {{ order.ref }} ({{ order.address }}) verspätet sich"
            "{% if late_min is not none %} um {{ late_min }} min{% endif %}"
            "{% if window %}; erwartet {W}{% endif %}.",
        ),
        "alert_failed": (
            "Zustellung gescheitert: Auftrag {{ order.ref }}",
            "Auftrag {{ order.ref }} ({{ order.address }}) konnte um {{ at|time }} Uhr nicht"
            " zugestellt werden{% if reason %}: {{ reason }}{% endif %}.",
        ),
    },
}
_TRACK = {
    "en": ("Track it: {{ tracking_url }}", "Track your delivery"),
    "de": ("Verfolgen: {{ tracking_url }}", "Lieferung verfolgen"),
}
_LINKED: Final = frozenset({"en_route", "approaching", "running_late", "eta_changed", "failed"})
"""Kinds whose default message carries the tracking link."""
_PROOF = {
    "en": ("Proof of delivery: {{ proof_url }}", "See the proof of delivery"),
    "de": ("Zustellnachweis: {{ proof_url }}", "Zustellnachweis ansehen"),
}
"""The delivered message's link to its proof, where the organisation shares proof photos."""

_BUTTON = (
    '{% if tracking_url %}<p><a href="{{ tracking_url }}" style="display:inline-block;'
    "padding:12px 20px;background:#1a56db;color:#ffffff;text-decoration:none;"
    'border-radius:6px;font-weight:bold">{LABEL}</a></p>{% endif %}'
)


def _defaults() -> dict[tuple[TemplateKind, CustomerChannel, str], Template]:
    made: dict[tuple[TemplateKind, CustomerChannel, str], Template] = {}
    for language, words in _WORDS.items():
        link_text, label = _TRACK[language]
        for kind_name, (subject, sentence) in words.items():
            kind: TemplateKind = kind_name  # type: ignore[assignment]
            text = sentence.replace("{W}", _WINDOW[language])
            linked = kind in _LINKED
            link = f"{{% if tracking_url %}} {link_text}{{% endif %}}" if linked else ""
            button = _BUTTON.replace("{LABEL}", label) if linked else ""
            if kind == "delivered":
                proof_text, proof_label = _PROOF[language]
                link = f"{{% if proof_url %}} {proof_text}{{% endif %}}"
                button = _BUTTON.replace("tracking_url", "proof_url").replace(
                    "{LABEL}", proof_label
                )
            for channel in template_channels(kind):
                if channel == "sms":
                    made[(kind, channel, language)] = Template(
                        kind=kind, channel=channel, language=language, text=
                        "{{ org.name }}: " + text + link,
                    )  # fmt: skip
                    continue
                html = (
                    '<!doctype html><html><body style="font-family:sans-serif">'
                    f"<p>{text}</p>" + button + "<p>{{ org.name }}</p></body></html>"
                )
                made[(kind, channel, language)] = Template(
                    kind=kind,
                    channel=channel,
                    language=language,
                    subject=subject,
                    text=text + link + "\n\n{{ org.name }}",
                    html=html,
                )
    return made


DEFAULTS: Final = _defaults()
"""The built-in templates by (kind, channel, language): English and German."""
DEFAULT_LANGUAGES: Final = tuple(_WORDS)
