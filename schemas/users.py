"""People who sign in to the pages: users, their sessions, and what an administrator sends to
manage them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from schemas.ids import OrgId, UserId

UserRole = Literal["admin", "dispatcher"]
"""What a person may be; integrations use API keys."""

Email = Annotated[
    str,
    Meta(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+$",
        description="an email address (compared without case)",
    ),
]
Password = Annotated[
    str,
    Meta(min_length=10, max_length=256, description="at least 10 characters, at most 256"),
]


class User(msgspec.Struct, frozen=True, kw_only=True):
    """A user as an administrator lists them: never the password."""

    id: UserId
    email: str
    name: str
    role: UserRole
    created_at: datetime
    deactivated_at: datetime | None = None
    last_sign_in_at: datetime | None = None


class Users(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /v1/users``: the organisation's users, deactivated ones too, oldest first."""

    users: list[User]


class UserIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/users``: a new user with their first password."""

    email: Email
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    role: UserRole
    password: Password


class UserPatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PATCH /v1/users/{id}``: fields left out are unchanged."""

    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    role: UserRole | None = None
    active: bool | None = None
    """False signs the user out everywhere at once and refuses their sign-ins; true lets them
    sign in again."""


class PasswordIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``PUT /v1/users/{id}/password``: a user changing their own gives ``current_password``;
    an administrator setting another user's does not. Every other session of the user ends."""

    password: Password
    current_password: Annotated[str, Meta(max_length=256)] | None = None


class SignIn(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/session``: sign in."""

    email: Annotated[str, Meta(min_length=1, max_length=254)]
    password: Annotated[str, Meta(min_length=1, max_length=256)]


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """The signed-in user's session. The session itself travels in an HttpOnly cookie; a page
    sends ``csrf_token`` back in the ``X-CSRF-Token`` header of every change it asks for."""

    user: User
    org_id: OrgId
    expires_at: datetime
    csrf_token: str
