"""Customers' words, read without any server: replies to text messages and control characters."""

from __future__ import annotations

from datetime import date

import pytest

from schemas.customer import (
    ReplyInstruction,
    ReplyReschedule,
    ReplyUnclear,
    control_character,
    read_reply,
)

TODAY = date(2026, 12, 6)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("GATE 4711", ReplyInstruction(field="gate_code", value="4711")),
        ("code: 12#34", ReplyInstruction(field="gate_code", value="12#34")),
        ("leave  behind the bins ", ReplyInstruction(field="leave_at", value="behind the bins")),
        ("Safe yes!", ReplyInstruction(field="safe_place_allowed", value=True)),
        ("SAFE NO", ReplyInstruction(field="safe_place_allowed", value=False)),
        ("tomorrow", ReplyReschedule(day=date(2026, 12, 7))),
        ("DAY 2026-12-09", ReplyReschedule(day=date(2026, 12, 9))),
        ("Ring twice\nplease", ReplyInstruction(field="note", value="Ring twice\nplease")),
        ("gate", ReplyInstruction(field="note", value="gate")),
        (
            "tomorrow after 5 please",
            ReplyInstruction(field="note", value="tomorrow after 5 please"),
        ),
    ],
)
def test_a_reply_is_read_by_its_first_word(text: str, expected: object) -> None:
    """GATE/CODE, LEAVE, SAFE, DAY and TOMORROW set one thing each; anything else is a note."""
    assert read_reply(text, TODAY) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("DAY next week", "YYYY-MM-DD"),
        ("SAFE maybe", "SAFE YES or SAFE NO"),
        ("GATE " + "1" * 41, "at most 40"),
        ("x" * 501, "at most 500"),
        ("GATE 12\x1b34", "could not read"),
        ("hello\x00", "could not read"),
    ],
)
def test_a_reply_that_cannot_be_acted_on_says_why(text: str, says: str) -> None:
    """Empty, an unreadable day, an unclear SAFE, too long or control characters: never cut
    short or guessed, but answered with the reason."""
    reply = read_reply(text, TODAY)
    assert isinstance(reply, ReplyUnclear)
    assert says in reply.reason


@pytest.mark.parametrize(
    ("text", "multiline", "found"),
    [
        ("plain text, ä ü 😀 <b>", False, None),
        ("two\nlines\tand a tab", True, None),
        ("two\nlines", False, "U+000A"),
        ("bell\x07", True, "U+0007"),
        ("del\x7f", True, "U+007F"),
        ("c1\x85", True, "U+0085"),
        ("line\u2028separator", True, "U+2028"),
    ],
)
def test_control_characters_are_found_and_named(
    text: str, multiline: bool, found: str | None
) -> None:
    """C0, DEL, C1 and the Unicode line separators are named; newline and tab only pass where
    several lines are allowed; markup is no control character."""
    assert control_character(text, multiline=multiline) == found
