"""`/kpi setup`: one form for what the team logs, where the daily digest goes and up to three
goals. The form is read into the commands it stands for (`track`, `digest daily HH:MM`,
`goal ...`) and each runs through the registry, so the form has no rules of its own."""

from __future__ import annotations

from dataclasses import dataclass

from bot.app.context import Context
from bot.app.digests import channel_breakdown
from bot.app.entries import form_text
from bot.app.names import unit_of
from bot.app.tracking import asked_for
from kpis.catalogue import Metric

#: goals the form offers to set at once
SETUP_GOALS = 3
DEFAULT_DIGEST_TIME = "09:00"


@dataclass(frozen=True)
class SetupForm:
    """What the form offers and starts from: every metric (the tracked ones chosen), the daily
    digest's channel and time, and the goals there are, written as `/kpi goal` takes them."""

    metrics: tuple[Metric, ...]
    tracked: tuple[str, ...]
    digest_channel: str | None
    digest_time: str
    goals: tuple[str, ...]
    channel: str | None


def digest_words(ctx: Context, channel: str, at: str) -> str:
    """The daily digest the form sets, as typed: `digest daily 09:00`, with the `by source`
    that channel's daily schedule has (the form does not offer it, so it must not drop it)."""
    kept = channel_breakdown(ctx.store, ctx.workspace.id, channel, "daily")
    return f"digest daily {at}" + (f" by {kept}" if kept else "")


def setup_form(ctx: Context) -> SetupForm:
    catalogue = ctx.catalogue
    daily = next((s for s in ctx.store.subscriptions(ctx.workspace.id) if s.kind == "daily"), None)
    goals: list[str] = []
    for goal in ctx.store.goals(ctx.workspace.id):
        if goal.key in catalogue.names and len(goals) < SETUP_GOALS:
            goals.append(f"{goal.key} {form_text(unit_of(catalogue, goal.key), goal.value)} "
                         f"{goal.period}")
    return SetupForm(
        metrics=tuple(catalogue.metrics.values()),
        tracked=tuple(m.key for m in asked_for(catalogue, ctx.workspace)),
        digest_channel=daily.channel_id if daily else None,
        digest_time=daily.at_time if daily else DEFAULT_DIGEST_TIME,
        goals=tuple(goals), channel=ctx.channel)

