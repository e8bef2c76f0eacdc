"""`/kpi why`, `/kpi whatif` (and its form) and the daily nudges to log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import App

from bot.slack.runtime import Message, Services, Who

Handler = Callable[[Services, Who, Any, Any], Message]

#: command type -> handler, merged into the `/kpi` dispatcher
HANDLERS: dict[type, Handler] = {}


def register(app: App, services: Services) -> None:
    """Listeners of the what-if form and the nudge's button."""


def attach(services: Services) -> None:
    """Adds the nudge sweep to the scheduler."""
