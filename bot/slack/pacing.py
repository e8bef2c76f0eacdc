"""Pacing of the Courier's Slack calls, so one team's limits never hold up another team's post.

Slack allows about one message a second per channel (bursts may be dropped), answers 429 with
`Retry-After` when a workspace is over a limit, and gives commercially distributed apps one
`conversations.history` / `conversations.replies` call a minute per workspace. A worker that
slept through any of these would keep every other workspace's digest waiting behind it, so
the Courier asks the Pacer first and, when the answer is "not yet", gives the delivery back
until then (its timer comes back at that instant) and moves on to the next one.

The pacing is per process; Slack's own 429s (recorded here with their Retry-After) pace
what several processes send to the same workspace.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

K = TypeVar("K")

#: chat.postMessage: about one message per second per channel
POST_INTERVAL = timedelta(seconds=1)
#: ... and bursts of a few are allowed
POST_BURST = 3
#: conversations.history and .replies for non-Marketplace apps: one call a minute per workspace
HISTORY_INTERVAL = timedelta(minutes=1)
#: Slack's 429 without a usable Retry-After header
DEFAULT_RETRY_AFTER = timedelta(seconds=30)


class Pacer:
    """When the next call of a kind may go out, per workspace and per channel."""

    def __init__(self, clock: Callable[[], datetime], *, post_interval: timedelta = POST_INTERVAL,
                 history_interval: timedelta = HISTORY_INTERVAL) -> None:
        self.clock = clock
        self.post_interval = post_interval
        self.history_interval = history_interval
        self._lock = threading.Lock()
        self._next_post: dict[tuple[str, str], datetime] = {}
        self._next_history: dict[tuple[str, str], datetime] = {}
        self._blocked_until: dict[str, datetime] = {}

    def wait_to_post(self, workspace_id: str, channel: str) -> timedelta:
        """How long until a message may go to this channel; zero takes a slot now.

        A bucket of POST_BURST messages refilled at one per POST_INTERVAL: an alert and its
        "back to normal", or a digest and an alert, go at once; a flood waits its turn."""
        with self._lock:
            now = self.clock()
            blocked = self._blocked_until.get(workspace_id, now)
            if blocked > now:
                return blocked - now
            key = (workspace_id, channel)
            # the bucket is stored as the instant it is empty again: at most BURST intervals away
            empty_at = max(self._next_post.get(key, now), now)
            if empty_at - now > self.post_interval * (POST_BURST - 1):
                return empty_at - now - self.post_interval * (POST_BURST - 1)
            self._next_post[key] = empty_at + self.post_interval
            self._forget_stale(self._next_post, now)
            return timedelta(0)

    def wait_to_read(self, workspace_id: str, method: str) -> timedelta:
        """How long until this workspace's `conversations.history` (or `.replies`, a limit
        of its own) may be called; zero takes the call now."""
        return self._take(self._next_history, (workspace_id, method), self.history_interval,
                          workspace_id)

    def rate_limited(self, workspace_id: str, retry_after: timedelta) -> None:
        """Slack answered 429: nothing goes to this workspace until Retry-After has passed."""
        with self._lock:
            now = self.clock()
            until = now + retry_after
            self._blocked_until[workspace_id] = max(until, self._blocked_until.get(workspace_id, until))
            self._forget_stale(self._blocked_until, now)

    def _take(self, slots: dict[K, datetime], key: K, interval: timedelta,
              workspace_id: str) -> timedelta:
        with self._lock:
            now = self.clock()
            ready = max(slots.get(key, now), self._blocked_until.get(workspace_id, now))
            if ready > now:
                return ready - now
            slots[key] = now + interval
            self._forget_stale(slots, now)
            return timedelta(0)

    @staticmethod
    def _forget_stale(slots: dict[K, datetime], now: datetime) -> None:
        """Memory follows what is busy, not every channel ever posted to."""
        if len(slots) > 50_000:
            for stale in [k for k, at in slots.items() if at <= now]:
                del slots[stale]
