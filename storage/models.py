"""SQLAlchemy 2 typed models. Alembic migrations in storage/migrations follow these."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """An instant, stored in UTC and read back timezone-aware on every backend.

    SQLite keeps no offset: it would store a non-UTC time as its wall-clock reading and hand
    back naive datetimes, which then compare wrongly (or raise) against aware ones.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    @staticmethod
    def _as_utc(value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return self._as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return self._as_utc(value)


class Base(DeclarativeBase):
    pass


class WorkspaceRow(Base):
    """A Slack workspace (team_id), or `local` for the command line alone."""

    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    locale: Mapped[str] = mapped_column(String(16), default="en_US")
    packs: Mapped[str] = mapped_column(String(200), default="marketing,sales")
    reminder_time: Mapped[str] = mapped_column(String(5), default="17:00", server_default="17:00")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: set when Slack said the app was uninstalled or its bot token revoked: nothing is posted
    #: for the workspace (its numbers stay) until it is installed again
    uninstalled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: the metrics `/kpi track` chose, comma-separated in their order; NULL: the packs' metrics
    tracked: Mapped[str | None] = mapped_column(Text)


class DefinitionRow(Base):
    """A workspace's own metric (formula is None) or KPI (formula set)."""

    __tablename__ = "definitions"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(200), default="")
    formula: Mapped[str | None] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(String(16))
    aggregation: Mapped[str] = mapped_column(String(8), default="sum")
    better: Mapped[str] = mapped_column(String(8), default="neutral")
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: set for a workspace's own dimension: the entry column (dim1..dim3) holding its values;
    #: negated once removed while entries keep its tags there (Store.remove_dimension)
    slot: Mapped[int | None] = mapped_column(Integer)
    #: a dimension's allowed values, comma-separated; NULL: free text
    choices: Mapped[str | None] = mapped_column(Text)


class DimensionColumns:
    """The built-in dimensions (kpis.catalogue.DIMENSIONS) and the slots of a workspace's own
    ones (kpis.catalogue.DIMENSION_SLOTS), '' when unset."""

    source: Mapped[str] = mapped_column(String(64), default="")
    rep: Mapped[str] = mapped_column(String(64), default="")
    campaign: Mapped[str] = mapped_column(String(64), default="")
    product: Mapped[str] = mapped_column(String(64), default="")
    dim1: Mapped[str] = mapped_column(String(64), default="", server_default="")
    dim2: Mapped[str] = mapped_column(String(64), default="", server_default="")
    dim3: Mapped[str] = mapped_column(String(64), default="", server_default="")


class EntryRow(DimensionColumns, Base):
    """One value per (workspace, metric, day, author, dimension values).

    Dimension columns hold '' when unset, so the unique key treats "no campaign" as a value.
    """

    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint(
            "workspace_id", "metric", "day", "author", "source", "rep", "campaign", "product",
            "dim1", "dim2", "dim3", name="uq_entries_key",
        ),
        Index("ix_entries_workspace_day", "workspace_id", "day"),
        # a stock's latest value per dimension values (Store._period_reads): migrations
        # 0008 and 0009
        Index("ix_entries_partition", "workspace_id", "metric", "source", "rep", "campaign",
              "product", "dim1", "dim2", "dim3", "day", "write_seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(40))
    day: Mapped[date] = mapped_column(Date)
    author: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    origin: Mapped[str] = mapped_column(String(16))
    written_at: Mapped[datetime] = mapped_column(UtcDateTime)
    write_seq: Mapped[int] = mapped_column(Integer, default=0)


class DailyTotalRow(Base):
    """Per (workspace, metric, day): sum and count of entries and the latest written value.

    Kept in the same transaction as every entry write, so a report reads one row per metric
    and day however many authors, sources or years of history there are.
    """

    __tablename__ = "daily_totals"
    __table_args__ = (Index("ix_daily_totals_workspace_day", "workspace_id", "day", "metric"),)

    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    metric: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    total: Mapped[float] = mapped_column(Float, default=0.0)
    count: Mapped[int] = mapped_column(Integer, default=0)
    latest: Mapped[float | None] = mapped_column(Float)


class MonthTotalRow(DimensionColumns, Base):
    """Per (workspace, metric, month, dimension values): sum and count of entries.

    A breakdown (`Store.periods_data_by`) reads the whole months of its periods here, about
    eight times fewer rows than entries, and only the days at their edges from entries. Kept
    in the same transaction as every entry write; a key with no entries left has no row.
    """

    __tablename__ = "month_totals"
    __table_args__ = (
        UniqueConstraint(
            "workspace_id", "metric", "month", "source", "rep", "campaign", "product",
            "dim1", "dim2", "dim3", name="uq_month_totals_key",
        ),
        Index("ix_month_totals_workspace_month", "workspace_id", "month"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(40))
    month: Mapped[date] = mapped_column(Date)  # its first day
    total: Mapped[float] = mapped_column(Float, default=0.0)
    count: Mapped[int] = mapped_column(Integer, default=0)


class ChangeRow(DimensionColumns, Base):
    """The audit trail: every write, who made it, old and new value, and where it came from."""

    __tablename__ = "changes"
    __table_args__ = (Index("ix_changes_workspace_actor", "workspace_id", "actor", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    batch: Mapped[str] = mapped_column(String(36), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    metric: Mapped[str] = mapped_column(String(40))
    day: Mapped[date] = mapped_column(Date)
    author: Mapped[str] = mapped_column(String(64))
    old_value: Mapped[float | None] = mapped_column(Float)
    new_value: Mapped[float | None] = mapped_column(Float)
    origin: Mapped[str] = mapped_column(String(16))
    undone_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SubscriptionRow(Base):
    """A channel's scheduled digest: one per (workspace, channel, kind)."""

    __tablename__ = "subscriptions"
    #: never an id again once used: failure DM keys name the subscription (migration 0012)
    __table_args__ = (UniqueConstraint("workspace_id", "channel_id", "kind"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    channel_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))
    weekday: Mapped[int | None] = mapped_column(Integer)
    at_time: Mapped[str] = mapped_column(String(5))
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    #: the dimension the digest also breaks down by (`by source`), NULL for none (0011)
    breakdown: Mapped[str | None] = mapped_column(String(32))


class TimerRow(Base):
    """When to look next at one thing that is due on a clock: a digest subscription (subject:
    its id), a workspace's alert closes or its reminders (subject: "").

    The sweep reads only rows whose `due_at` has passed (an index range), so its cost follows
    what is due, not how many workspaces exist. Claiming a row moves `due_at` to the end of the
    claim's lease and sets `claim`: a crashed claimer's row becomes due again by itself.
    """

    __tablename__ = "timers"
    __table_args__ = (UniqueConstraint("workspace_id", "task", "subject"),
                      Index("ix_timers_due_at", "due_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    task: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(64), default="")
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claim: Mapped[str | None] = mapped_column(String(64))


class DeliveryRow(Base):
    """One message that must go out exactly once, claimed before it is posted.

    `key` names what is delivered (a digest's channel, kind and period; an alert transition),
    so a second claimer, another process or a restart finds the row and stays quiet. A claim
    whose `expires_at` has passed without `delivered_at` was left by a crashed process and may
    be taken over.
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    channel_id: Mapped[str] = mapped_column(String(32), default="")
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str] = mapped_column(String(64))
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    message_ts: Mapped[str | None] = mapped_column(String(32))
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str] = mapped_column(String(200), default="")


class AlertRuleRow(Base):
    """A threshold or change rule, with its state machine's state as JSON.

    `version` increases with every state write, so two processes evaluating the same rule
    cannot both record the same transition. A removed rule is kept, hidden from everything
    but the alerts timer, while its open firing message still has to say so (`removed_at`,
    `removed_by`), and deleted once it does.
    """

    __tablename__ = "alert_rules"
    #: never an id again once used: delivery keys name the rule (migration 0010)
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"),
                                              index=True)
    channel_id: Mapped[str] = mapped_column(String(32))
    kpi: Mapped[str] = mapped_column(String(40))
    rule: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text, default="{}")
    version: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    removed_by: Mapped[str | None] = mapped_column(String(64))


class GoalRow(Base):
    """A target for a KPI or metric over a week or a month."""

    __tablename__ = "goals"
    __table_args__ = (UniqueConstraint("workspace_id", "key", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(40))
    period: Mapped[str] = mapped_column(String(8))
    value: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SourceClassRow(Base):
    """How a workspace counts one `source` value for paid CAC and paid CPL, when it differs
    from (or confirms) the defaults in kpis.catalogue."""

    __tablename__ = "source_classes"

    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    paid: Mapped[bool] = mapped_column(Boolean)
    set_by: Mapped[str] = mapped_column(String(64), default="")
    set_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PersonRow(Base):
    """What the bot knows of a person: their time zone and whether they want reminders."""

    __tablename__ = "people"

    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    timezone: Mapped[str | None] = mapped_column(String(64))
    reminders: Mapped[bool] = mapped_column(Boolean, default=True)


# -- the HTTP API and webhooks (release 2) -----------------------------------------------------


class ApiTokenRow(Base):
    """A workspace's API token: only the SHA-256 of the secret is kept, never the secret."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"),
                                              index=True)
    name: Mapped[str] = mapped_column(String(40))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class IdempotencyKeyRow(Base):
    """An `Idempotency-Key` already used: a retry with the same body gets the same answer.

    Inserted in the same transaction as the entries it stored, so a key is either used with
    its entries or not at all.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("workspace_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    response: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class WebhookEventRow(Base):
    """A provider's event already processed (Stripe's `evt_...`): each id counts once."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("workspace_id", "provider", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(200), default="")
    processed_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WebhookSecretRow(Base):
    """A workspace's endpoint secret for a provider (needed in clear to check signatures)."""

    __tablename__ = "webhook_secrets"

    workspace_id: Mapped[str] = mapped_column(
        ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    provider: Mapped[str] = mapped_column(String(16), primary_key=True)
    secret: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AdminNoticeRow(Base):
    """Something an admin should see in App Home (a Stripe charge in another currency...)."""

    __tablename__ = "admin_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id", ondelete="CASCADE"),
                                              index=True)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
