"""People as Slack knows them: a person's time zone from users.info, asked once and kept."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from storage import Store

log = logging.getLogger("kpibot.directory")
#: after a failed users.info, that person waits this long before the next look-up
LOOKUP_RETRY_SECONDS = 600.0


class SlackDirectory:
    """The use cases' Directory: zones from users.info, remembered in the people table."""

    def __init__(self, store: Store, client_for: Callable[[str], WebClient | None]) -> None:
        self.store = store
        self.client_for = client_for
        self._retry_after: dict[tuple[str, str], float] = {}

    def zone_of(self, workspace_id: str, user_id: str) -> str | None:
        if self._retry_after.get((workspace_id, user_id), 0.0) > time.monotonic():
            return None
        client = self.client_for(workspace_id)
        workspace = self.store.workspace(workspace_id)
        if client is None or workspace is None:
            return None
        try:
            user = client.users_info(user=user_id).get("user") or {}
        except (SlackApiError, SlackClientError, OSError) as error:
            log.warning("users.info failed for a nudge: %s", error.__class__.__name__)
            self._retry_after[(workspace_id, user_id)] = time.monotonic() + LOOKUP_RETRY_SECONDS
            return None
        zone = str(user.get("tz") or workspace.timezone)
        if user.get("deleted") or user.get("is_bot"):
            self.store.remember_person(workspace_id, user_id, timezone=zone, reminders=False)
            return None
        self.store.remember_person(workspace_id, user_id, timezone=zone)
        return zone
