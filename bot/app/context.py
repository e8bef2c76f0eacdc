"""What every use case is called with: the store, the workspace, the actor, the moment, and
the ports to the world (posting, and hooks that keep schedules and alerts in step)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cached_property

from bot.app.ports import NO_PORTS, Ports
from kpis.catalogue import Catalogue
from kpis.periods import local_date
from storage.repository import Store, Workspace

Clock = Callable[[], datetime]
#: who the scheduler, sweeps and evaluations act as
SYSTEM_ACTOR = "kpibot"


class UserError(ValueError):
    """Input the user can fix; the message says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Context:
    """Who is asking, about which workspace, from which channel, and when."""

    store: Store
    workspace: Workspace
    actor: str
    now: datetime
    channel: str | None = None
    ports: Ports = field(default=NO_PORTS, compare=False)
    #: the workspace's catalogue when it was read with the workspace (open_context)
    definitions: Catalogue | None = field(default=None, compare=False, repr=False)
    #: whether the actor is an admin, asked only when a use case needs to know
    admin: Callable[[], bool] = field(default=lambda: False, compare=False, repr=False)

    @property
    def today(self) -> date:
        return local_date(self.now, self.workspace.timezone)

    @cached_property
    def is_admin(self) -> bool:
        return self.admin()

    @cached_property
    def catalogue(self) -> Catalogue:
        """Read once per request (a use case reads it several times), in the workspace's language."""
        found = self.definitions or self.store.catalogue(self.workspace.id)
        return _localized(found, self.workspace.locale)

    def in_channel(self) -> str:
        """The channel the request came from, for commands that post or watch there."""
        if not self.channel:
            raise UserError("Use this in a channel, so I know where to post.")
        return self.channel


def open_context(
    store: Store, workspace_id: str, actor: str, now: datetime, *, timezone: str = "UTC",
    enterprise_id: str | None = None, locale: str = "en_US", channel: str | None = None,
    ports: Ports = NO_PORTS, found: tuple[Workspace, Catalogue] | None = None,
    admin: Callable[[], bool] = lambda: False,
) -> Context:
    """The context of `workspace_id`, created (with these settings) when it is new; `found` is
    the workspace and catalogue when the caller has just read them."""
    found = found or store.workspace_and_catalogue(workspace_id)
    if found is None:
        workspace, _ = store.ensure_workspace(workspace_id, timezone=timezone,
                                              enterprise_id=enterprise_id, locale=locale)
        return Context(store, workspace, actor, now, channel, ports, admin=admin)
    return Context(store, found[0], actor, now, channel, ports, definitions=found[1], admin=admin)


_LOCALIZED: dict[tuple[int, str], tuple[Catalogue, Catalogue]] = {}


def _localized(catalogue: Catalogue, locale: str) -> Catalogue:
    """`catalogue.localized(locale)`, made once per catalogue object and locale (the store
    gives the same object for the same definitions)."""
    key = (id(catalogue), locale)
    cached = _LOCALIZED.get(key)
    if cached is not None and cached[0] is catalogue:
        return cached[1]
    if len(_LOCALIZED) > 1024:
        _LOCALIZED.clear()
    made = catalogue.localized(locale)
    _LOCALIZED[key] = (catalogue, made)
    return made
