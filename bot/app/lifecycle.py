"""The app's life in a workspace: uninstalled, its tokens revoked, installed again, deleted.

Uninstalling (or revoking the bot token) deletes the workspace's tokens and stops everything
the bot posts there on its own (digests, alerts, reminders) without calling the chat service
again; the numbers, rules and schedules stay, so an install resumes where it stopped.
`kpibot workspace delete` is what removes the numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bot.app.context import UserError
from bot.app.ports import Ports
from storage import Store

log = logging.getLogger("kpibot.lifecycle")
#: deletions of a workspace's data are logged here, whoever asked
audit = logging.getLogger("kpibot.audit")


@dataclass(frozen=True)
class Stopped:
    """What an uninstall or a revocation did: tokens deleted, and whether posting stopped now
    (False when it had stopped before, or only people's tokens were revoked)."""

    workspace_id: str
    deleted: tuple[str, ...]
    stopped: bool


def uninstalled(store: Store, ports: Ports, workspace_id: str, enterprise_id: str | None,
                now: datetime) -> Stopped:
    """Slack's `app_uninstalled`: every token of the workspace goes, and so does its posting."""
    if ports.installations is not None:
        ports.installations.delete_all(enterprise_id=enterprise_id, team_id=workspace_id)
    return _stop(store, ports, workspace_id, ("bot", "installations"), now, "app_uninstalled")


def tokens_revoked(store: Store, ports: Ports, workspace_id: str, enterprise_id: str | None,
                   *, bot: Sequence[str], oauth: Sequence[str], now: datetime) -> Stopped:
    """Slack's `tokens_revoked`: the people's tokens listed go; a revoked bot token stops the
    workspace's posting (nothing can be posted without it)."""
    installations = ports.installations
    deleted: list[str] = []
    for user_id in oauth:
        if installations is not None:
            installations.delete_installation(enterprise_id=enterprise_id, team_id=workspace_id,
                                              user_id=user_id)
        deleted.append(f"user {user_id}")
    if not bot:
        log.info("tokens revoked in %s: %s", workspace_id, ", ".join(deleted) or "none")
        return Stopped(workspace_id, tuple(deleted), False)
    if installations is not None:
        installations.delete_bot(enterprise_id=enterprise_id, team_id=workspace_id)
    return _stop(store, ports, workspace_id, (*deleted, "bot"), now, "tokens_revoked")


def _stop(store: Store, ports: Ports, workspace_id: str, deleted: tuple[str, ...],
          now: datetime, why: str) -> Stopped:
    stopped = store.mark_uninstalled(workspace_id, now)
    if stopped:
        ports.schedule_changed()
    log.warning("%s in %s: deleted %s; %s", why, workspace_id, ", ".join(deleted),
                "digests, alerts and reminders stopped, numbers kept" if stopped
                else "nothing was being posted")
    return Stopped(workspace_id, deleted, stopped)


def reinstalled(store: Store, workspace_id: str,
                schedule_changed: Callable[[], None] | None = None) -> bool:
    """The app is in the workspace again (an install, or a request from it): its digests,
    alerts and reminders resume. True when it had been stopped."""
    resumed = store.mark_installed(workspace_id)
    if resumed:
        log.warning("installed again in %s: digests, alerts and reminders resume", workspace_id)
        if schedule_changed is not None:
            schedule_changed()
    return resumed


@dataclass(frozen=True)
class Deleted:
    workspace_id: str
    #: rows removed per table (tables with none left out)
    rows: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def delete_workspace(store: Store, workspace_id: str, *, actor: str, now: datetime) -> Deleted:
    """Removes every row of the workspace from every table, for good, and logs who did it."""
    removed = store.delete_workspace(workspace_id)
    if removed is None:
        known = ", ".join(store.workspace_ids()) or "none"
        raise UserError(f"There is no workspace {workspace_id} (workspaces: {known}).")
    rows = {table: n for table, n in sorted(removed.items()) if n}
    deleted = Deleted(workspace_id, rows)
    audit.warning("workspace %s deleted by %s at %s: %d rows (%s)", workspace_id, actor,
                  now.isoformat(), deleted.total,
                  ", ".join(f"{table} {n}" for table, n in rows.items()))
    return deleted
