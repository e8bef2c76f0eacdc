"""What a timer's handler answers: what it did, and when to look at its subject next.

Each digest subscription, each workspace's alert closes and its reminders have one timer
(storage/timers.py). The scheduler claims the due ones and calls the handler of the task
(`digests.wake_digest`, `Alerting.wake`, `reminders.wake_nudges`); a handler works out what is
really due at `now` (a timer due early is always safe) and says when it is next due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.app.ports import Outcome
from storage import Store

#: a delivery another process holds, or one that failed for now, is looked at again after this
#: (or when its claim or Retry-After ends, if later)
RETRY = timedelta(seconds=60)
#: what a delivery ends as when it is not out yet and must be tried again
PENDING = frozenset({"retry", "held"})


@dataclass(frozen=True)
class Woken:
    #: None: nothing more to look at (the subscription or the last rule is gone)
    next_at: datetime | None
    outcomes: tuple[Outcome, ...] = ()


def retry_at(store: Store, keys: list[str], now: datetime) -> datetime:
    """When the pending deliveries may be tried again: their claim or Retry-After's end,
    never sooner than a second from now nor later than RETRY."""
    ends = [d.expires_at for d in (store.delivery(key) for key in keys)
            if d is not None and d.expires_at is not None]
    later = max(ends, default=now + RETRY)
    return min(max(later, now + timedelta(seconds=1)), now + RETRY)
