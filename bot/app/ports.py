"""The small protocols the use cases need from the world, implemented by adapters.

The Courier (bot/slack) delivers exactly once; the scheduler and the alert evaluator are told
when something they follow changed. Use cases hand over domain payloads (a digest, an alert
transition, a nudge); the adapter renders and posts them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

#: what a delivery ended as: posted, skipped (done before), held (another process), retry, failed
Outcome = str


class Poster(Protocol):
    """Posts a payload once under `key`, whoever asks and however often."""

    def deliver(self, workspace_id: str, key: str, *, kind: str, channel: str,
                due_at: datetime, build: Callable[[], object], thread_of: str | None = None,
                edits: str | None = None, direct: bool = False) -> Outcome:
        """`thread_of`: posted in the thread of the message delivered under that key (at the
        top level when there is none); `edits`: that message is updated in place instead;
        `direct`: `channel` is a person's user id, the message goes to their DM."""
        ...


class Directory(Protocol):
    """Who a person is in the chat service (their time zone), or None when it can't be known now."""

    def zone_of(self, workspace_id: str, user_id: str) -> str | None: ...


class Installations(Protocol):
    """Where the chat service's tokens of each install are kept (the OAuth installation
    store); a single-workspace bot with its token in the environment has none."""

    def delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None: ...

    def delete_installation(self, *, enterprise_id: str | None, team_id: str | None,
                            user_id: str | None = None) -> None: ...

    def delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None: ...


def _nothing_logged(workspace_id: str, day: date, metrics: Iterable[str]) -> None:
    return None


def _nothing_scheduled() -> None:
    return None


def _no_rules(workspace_id: str) -> None:
    return None


def _not_snoozed(workspace_id: str, rule_id: int) -> None:
    return None


def _not_counted(origin: str, count: int) -> None:
    return None


@dataclass(frozen=True)
class Ports:
    """The ports one front end gives its use cases; every one has a harmless default."""

    poster: Poster | None = None
    #: numbers were stored: alert rules that they feed are evaluated (debounced)
    logged: Callable[[str, date, Iterable[str]], None] = _nothing_logged
    #: a subscription or a time zone changed: this process's schedule follows at once
    schedule_changed: Callable[[], None] = _nothing_scheduled
    #: a rule was added: it is judged on today's numbers at once
    rules_changed: Callable[[str], None] = _no_rules
    #: a firing rule was snoozed: its firing message and thread say so
    snoozed: Callable[[str, int], object] = _not_snoozed
    #: how many values came in, and from where (slack, form, cli, api): for the operator's metrics
    counted: Callable[[str, int], None] = _not_counted
    #: the installs' tokens, deleted when the app is uninstalled or its tokens revoked
    installations: Installations | None = None


NO_PORTS = Ports()
