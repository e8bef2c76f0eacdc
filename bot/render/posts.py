"""What the Courier posts: a digest, an alert transition or a nudge, rendered once here.

Use cases hand the Poster a domain payload; this is the one place that turns each kind into
the message (and the files for its thread) that goes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.app.alerts import AlertPost
from bot.app.digests import Digest
from bot.app.reminders import NudgePost
from bot.render.alerts import alert_message
from bot.render.digest import digest_charts, digest_message
from bot.render.insights import nudge_message


@dataclass(frozen=True)
class Attachment:
    filename: str
    title: str
    content: bytes


@dataclass(frozen=True)
class Outgoing:
    """A message to post once, with files for its thread."""

    text: str
    blocks: list[dict[str, Any]]
    files: Sequence[Attachment] = field(default_factory=tuple)


def outgoing_of(payload: object) -> Outgoing:
    if isinstance(payload, Outgoing):
        return payload
    if isinstance(payload, Digest):
        message = digest_message(payload)
        files = [Attachment(c.filename, c.title, c.png) for c in digest_charts(payload)]
        return Outgoing(message["text"], message["blocks"], files)
    if isinstance(payload, AlertPost):
        body = alert_message(
            payload.rule, payload.note, label=payload.label, unit=payload.unit,
            currency=payload.currency, locale=payload.locale, period=payload.period,
            trend=payload.trend, authors=payload.authors,
        )
        return Outgoing(body["text"], body["blocks"])
    if isinstance(payload, NudgePost):
        body = nudge_message(payload.missing, payload.active_days)
        return Outgoing(body["text"], body["blocks"])
    raise TypeError(f"nothing renders a {type(payload).__name__} for posting")
