"""A removed alert rule is kept (alert_rules.removed_at, .removed_by) until its open firing message
says so, the update retried by the alerts timer until it is out; and subscription ids are never
reused on SQLite: a failure DM's key (`failure-dm:digest:{id}:{episode}`) names the subscription,
so a new subscription given a removed one's id (SQLite hands out the highest id + 1 again) found
its first failure already told and never told it. SQLite gets AUTOINCREMENT on subscriptions, its
counter past every subscription id a key names; PostgreSQL's sequence never reused an id.

Downgrading purges the removed rules (the columns that hide them go), and an update they still
owed is not sent.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

import re

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_SUBSCRIPTION_IN_KEY = re.compile(r"failure-dm:digest:(\d+):")


def _sequence(bind: sa.engine.Connection, table: str) -> int:
    found = bind.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t"),
                         {"t": table}).scalar()
    return int(found or 0)


def _set_sequence(bind: sa.engine.Connection, table: str, seq: int) -> None:
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = :t"), {"t": table})
    bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :seq)"),
                 {"t": table, "seq": seq})


def _highest_subscription_id(bind: sa.engine.Connection) -> int:
    highest = bind.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM subscriptions")).scalar_one()
    for (key,) in bind.execute(sa.text(
            "SELECT key FROM deliveries WHERE key LIKE 'failure-dm:digest:%'")):
        found = _SUBSCRIPTION_IN_KEY.match(key)
        if found:
            highest = max(highest, int(found.group(1)))
    return int(highest)


def upgrade() -> None:
    # nullable columns: SQLite adds them in place, so alert_rules keeps its AUTOINCREMENT counter
    op.add_column('alert_rules', sa.Column('removed_at', sa.DateTime(timezone=True), nullable=True))
    op.add_column('alert_rules', sa.Column('removed_by', sa.String(length=64), nullable=True))
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return
    highest = _highest_subscription_id(bind)
    with op.batch_alter_table('subscriptions', recreate='always',
                              table_kwargs={'sqlite_autoincrement': True}):
        pass
    _set_sequence(bind, 'subscriptions', highest)


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.text("DELETE FROM alert_rules WHERE removed_at IS NOT NULL"))
    if bind.dialect.name != 'sqlite':
        op.drop_column('alert_rules', 'removed_by')
        op.drop_column('alert_rules', 'removed_at')
        return
    # recreating a table resets its counter to its highest row: keep the one past removed rules
    counter = _sequence(bind, 'alert_rules')
    with op.batch_alter_table('alert_rules', recreate='always',
                              table_kwargs={'sqlite_autoincrement': True}) as batch_op:
        batch_op.drop_column('removed_by')
        batch_op.drop_column('removed_at')
    _set_sequence(bind, 'alert_rules', counter)
    with op.batch_alter_table('subscriptions', recreate='always',
                              table_kwargs={'sqlite_autoincrement': False}):
        pass
