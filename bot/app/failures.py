"""A delivery that failed for good reaches the person who set it up, once.

When a digest or an alert cannot be posted for good (the channel is gone or archived, the bot
was removed...), the admin who made the subscription or the rule gets one DM saying what
failed and how to fix it. The DM goes through the Courier under its own key,
`failure-dm:{subject}:{episode}`: `subject` is the subscription or the rule (`digest:{id}`,
`alert:{id}`; ids are never reused), `episode` the id of its latest delivery that reached
Slack (0 before any). So a second failure of the same still-broken subscription finds the key
delivered and stays quiet, across restarts and processes; once a delivery of it goes out
again (it was fixed), a later failure starts a new episode and DMs again.

A DM that does not go out at once (Slack 5xx, ratelimited, a process killed while sending)
is sent by the subject's failure-DM timer (storage/timers.py), set before the first try:
`wake_failure_dm` works out from the deliveries whether a notice is still owed, and sends it
under the same key until it is out. No creator known, or the DM failing for good: it is
logged, and App Home still lists the failed delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from bot.app.context import SYSTEM_ACTOR
from bot.app.ports import Outcome, Poster
from bot.app.timers import PENDING, RETRY, Woken, retry_at
from storage.repository import Delivery, Store
from storage.timers import FAILURE_DM_TIMER, Timer

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
class Subject:
    """What a notice is about: `name` (`digest:{id}`, `alert:{id}`), whose deliveries' keys
    start with `key_prefix`, set up by `owner`, said as `what`."""

    name: str
    workspace_id: str
    key_prefix: str
    owner: str
    what: str


@dataclass(frozen=True)
class Told:
    """The notice's delivery key and what it ended as."""

    key: str
    outcome: Outcome


#: the subject a failure-DM timer names, as it is now (None: the subscription or rule is gone),
#: by the kind its name starts with: workspace id and subject id -> subject
Subjects = Mapping[str, Callable[[Store, str, int], "Subject | None"]]


def notice_key(subject: str, episode: int) -> str:
    return f"{KIND}:{subject}:{episode}"


def tell_owner(store: Store, poster: Poster, failed_key: str, subject: Subject,
               clock: Callable[[], datetime]) -> Told | None:
    """If the delivery under `failed_key` failed for good, DMs the subject's owner once per
    episode; None when there is nothing to say or nobody to say it to."""
    failed = store.delivery(failed_key)
    if failed is None or failed.failed_at is None:
        return None
    return _tell(store, poster, subject, failed, clock)


def _tell(store: Store, poster: Poster, subject: Subject, failed: Delivery,
          clock: Callable[[], datetime], *, timed: bool = False) -> Told | None:
    """`timed`: called by the subject's timer, whose claim already makes it look again."""
    if not subject.owner or subject.owner == SYSTEM_ACTOR:
        log.warning("delivery %s failed for good (%s); nobody to tell: %s has no creator",
                    failed.key, failed.error, subject.name)
        return None
    key = notice_key(subject.name, store.last_reached(failed.workspace_id, subject.key_prefix))
    done = store.delivery(key)
    if done is not None and (done.delivered_at or done.failed_at):
        return Told(key, "skipped")
    now = clock()
    if not timed:  # should this process die or Slack not take it now, the timer tells it again
        store.wake(failed.workspace_id, FAILURE_DM_TIMER, subject.name, at=now + RETRY)
    notice = FailureNotice(subject.what, failed.channel_id, failed.error)
    outcome = poster.deliver(failed.workspace_id, key, kind=KIND, channel=subject.owner,
                             due_at=now, build=lambda: notice, direct=True)
    if outcome in PENDING and not timed:
        store.wake(failed.workspace_id, FAILURE_DM_TIMER, subject.name,
                   at=retry_at(store, [key], clock()))
    elif outcome == "failed":
        log.warning("could not tell %s that %s failed; App Home lists it", subject.owner,
                    failed.key)
    return Told(key, outcome)


def wake_failure_dm(store: Store, poster: Poster, timer: Timer, now: datetime,
                    clock: Callable[[], datetime], subjects: Subjects) -> Woken:
    """A subject's failure-DM timer: the notice of its latest failure, if its episode's notice
    is not out yet; looked at again while it is pending, and gone once it is out (or nothing
    is owed: the subject was fixed or removed, the app uninstalled)."""
    kind, _, number = timer.subject.partition(":")
    find = subjects.get(kind)
    subject = find(store, timer.workspace_id, int(number)) if find and number.isdigit() else None
    workspace = store.workspace(timer.workspace_id)
    if subject is None or workspace is None or not workspace.installed:
        return Woken(None)
    failed = store.failed_since(subject.workspace_id, subject.key_prefix,
                                store.last_reached(subject.workspace_id, subject.key_prefix))
    if failed is None:
        return Woken(None)
    told = _tell(store, poster, subject, failed, clock, timed=True)
    if told is None or told.outcome == "skipped":  # nobody to tell, or told already
        return Woken(None)
    if told.outcome not in PENDING:
        return Woken(None, (told.outcome,))
    return Woken(retry_at(store, [told.key], now), (told.outcome,))
