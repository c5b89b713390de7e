"""``GET /v1/demo/mail``: the mails the demo sink received for the caller's organisation.

Only when a demo mail sink runs (``lastmile serve --demo`` with no SMTP relay configured sets
``LASTMILE_DEMO_MAIL_DIR``); otherwise 404 saying so. A mail is the caller's when its
``X-Lastmile-Idempotency-Key`` names one of the organisation's outbox rows, so a key of one
organisation never reads another's customers' mail; mails that name no outbox row are not
shown. Any API key reads (READERS). The page ``/demo/mail`` shows them.
"""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from app.auth import READERS
from app.errors import NotFound
from app.http import answer, query_int, resources_of
from app.process.mail_sink import read_mails
from schemas.notification_views import DemoMail, DemoMailbox
from store.delivery import org_settings
from store.notifications import keys_of_org

DEFAULT_LIMIT: Final = 50
MAX_LIMIT: Final = 200


async def mailbox(request: Request) -> Response:
    """``GET /v1/demo/mail?limit=``: newest first, at most ``limit`` (default 50, at most 200)."""
    resources = resources_of(request)
    principal = await resources.auth.require_api_key(request, READERS)
    folder = resources.settings.demo_mail_dir
    if folder is None:
        raise NotFound(
            "no demo mail sink runs here: `lastmile serve --demo` starts one when no SMTP relay"
            " is configured"
        )
    limit = query_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    # Read more than asked: mails of other organisations are dropped below.
    mails = await asyncio.to_thread(read_mails, folder, limit * 4)
    keys = [m.idempotency_key for m in mails if m.idempotency_key]
    async with resources.pool.connection() as conn:
        ours = await keys_of_org(conn, principal.org_id, keys)
        zone = (await org_settings(conn, principal.org_id)).timezone
    shown = [
        DemoMail(
            id=m.id,
            received_at=m.received_at,
            sent_at=m.sent_at,
            sender=m.from_,
            to=m.to,
            subject=m.subject,
            text=m.text,
            html=m.html,
        )
        for m in mails
        if m.idempotency_key in ours
    ]
    return answer(DemoMailbox(time_zone=zone, mails=shown[:limit]))
