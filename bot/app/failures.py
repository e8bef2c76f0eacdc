"""A delivery that failed for good reaches the person who set it up, once.

When a digest or an alert cannot be posted for good (the channel is gone or archived, the bot
was removed...), the admin who made the subscription or the rule gets one DM saying what
failed and how to fix it. The DM goes through the Courier under its own key,
`failure-dm:{subject}:{episode}`: `subject` is the subscription or the rule, `episode` the id
of its latest delivery that reached Slack (0 before any). So a second failure of the same
still-broken subscription finds the key delivered and stays quiet, across restarts and
processes; once a delivery of it goes out again (it was fixed), a later failure starts a new
episode and DMs again. No creator known, or the DM itself failing: it is logged, and App
Home still lists the failed delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from bot.app.context import SYSTEM_ACTOR
from bot.app.ports import Outcome, Poster
from storage.repository import Store

log = logging.getLogger("kpibot.failures")

KIND = "failure-dm"


@dataclass(frozen=True)
class FailureNotice:
    """Said to the person who set a delivery up: `what` ("your daily digest") could not be
    posted in `channel_id` because Slack said `error`."""

    what: str
    channel_id: str
    error: str


@dataclass(frozen=True)
class Told:
    """The notice's delivery key and what it ended as."""

    key: str
    outcome: Outcome


def notice_key(subject: str, episode: int) -> str:
    return f"{KIND}:{subject}:{episode}"


def tell_owner(store: Store, poster: Poster, failed_key: str, *, subject: str,
               key_prefix: str, owner: str, what: str,
               clock: Callable[[], datetime]) -> Told | None:
    """If the delivery under `failed_key` failed for good, DMs `owner` once per episode of
    `subject` (whose deliveries' keys start with `key_prefix`); None when there is nothing
    to say or nobody to say it to."""
    failed = store.delivery(failed_key)
    if failed is None or failed.failed_at is None:
        return None
    if not owner or owner == SYSTEM_ACTOR:
        log.warning("delivery %s failed for good (%s); nobody to tell: %s has no creator",
                    failed_key, failed.error, subject)
        return None
    key = notice_key(subject, store.last_reached(failed.workspace_id, key_prefix))
    notice = FailureNotice(what, failed.channel_id, failed.error)
    outcome = poster.deliver(failed.workspace_id, key, kind=KIND, channel=owner,
                             due_at=clock(), build=lambda: notice, direct=True)
    if outcome == "failed":
        log.warning("could not tell %s that %s failed; App Home lists it", owner, failed_key)
    return Told(key, outcome)
