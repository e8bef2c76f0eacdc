"""What the Courier posts: a digest, an alert's message (or its update, or a note in its
thread), a nudge or a `/kpi chart`, rendered once here.

Use cases hand the Poster a domain payload; this is the one place that turns each kind into
the message (and the files for its thread) that goes out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bot.app.alerts import AlertPost, SnoozePost
from bot.app.charts import Charted
from bot.app.digests import Digest
from bot.app.failures import FailureNotice
from bot.app.reminders import NudgePost
from bot.render.alerts import alert_message, snooze_note_message
from bot.render.blocks import failure_notice_message
from bot.render.chart_post import chart_message
from bot.render.digest import (
    digest_charts,
    digest_details,
    digest_message,
    fallback_blocks,
    has_charts,
)
from bot.render.insights import nudge_message
from bot.render.kit import MAX_BLOCKS, sections


@dataclass(frozen=True)
class Attachment:
    filename: str
    title: str
    content: bytes


def _no_files() -> Sequence[Attachment]:
    return ()


@dataclass(frozen=True)
class Outgoing:
    """A message to post once, with files for its thread."""

    text: str
    blocks: list[dict[str, Any]]
    #: the files, made when the message is out: a digest's charts are most of its CPU, not
    #: to be spent on a post that Slack answers with 429 (or refuses) and that is built again
    files: Callable[[], Sequence[Attachment]] = _no_files
    #: the same message without native blocks (table, data_visualization), posted instead
    #: when Slack answers `invalid_blocks`
    fallback_blocks: list[dict[str, Any]] | None = None
    #: said in the thread with the files (the digest's details)
    comment: str | None = None


def outgoing_of(payload: object) -> Outgoing:
    if isinstance(payload, Outgoing):
        return payload
    if isinstance(payload, Digest):
        digest = payload
        message = digest_message(digest)
        charted = has_charts(digest)
        details = digest_details(digest)
        # no charts, no thread to say the details in: below the fold of the message
        extra = sections(details.split("\n")) if details and not charted else []

        def charts() -> list[Attachment]:
            return [Attachment(c.filename, c.title, c.png) for c in digest_charts(digest)]

        return Outgoing(message["text"], [*message["blocks"], *extra][:MAX_BLOCKS], charts,
                        fallback_blocks=[*fallback_blocks(digest), *extra][:MAX_BLOCKS],
                        comment=details if charted else None)
    if isinstance(payload, Charted):
        chart = chart_message(payload)
        attached = (Attachment(chart.filename, chart.title, chart.png),)
        return Outgoing(chart.text, chart.blocks, lambda: attached,
                        fallback_blocks=chart.fallback_blocks)
    if isinstance(payload, AlertPost):
        body = alert_message(payload)
        return Outgoing(body["text"], body["blocks"])
    if isinstance(payload, SnoozePost):
        body = snooze_note_message(payload)
        return Outgoing(body["text"], body["blocks"])
    if isinstance(payload, FailureNotice):
        body = failure_notice_message(payload)
        return Outgoing(body["text"], body["blocks"])
    if isinstance(payload, NudgePost):
        body = nudge_message(payload.missing, payload.active_days)
        return Outgoing(body["text"], body["blocks"])
    raise TypeError(f"nothing renders a {type(payload).__name__} for posting")
