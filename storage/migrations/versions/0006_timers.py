"""Timers: the next instant to look at each digest subscription, each workspace's alert
closes and its reminders, indexed, so the minute sweep reads only what is due

Revision ID: 0006_timers
Revises: 0005_sources
Create Date: 2026-12-06
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = '0006_timers'
down_revision = '0005_sources'
branch_labels = None
depends_on = None

#: "look at the next sweep": the handler of each timer works out what is really due
_ASAP = datetime(2000, 1, 1, tzinfo=UTC)


def upgrade() -> None:
    op.create_table('timers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.String(length=32), nullable=False),
    sa.Column('task', sa.String(length=16), nullable=False),
    sa.Column('subject', sa.String(length=64), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claim', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('workspace_id', 'task', 'subject')
    )
    op.create_index('ix_timers_due_at', 'timers', ['due_at'], unique=False)
    conn = op.get_bind()
    workspaces = sa.table('workspaces', sa.column('id'), sa.column('uninstalled_at'))
    subscriptions = sa.table('subscriptions', sa.column('id'), sa.column('workspace_id'))
    rules = sa.table('alert_rules', sa.column('workspace_id'))
    timers = sa.table('timers', *(sa.column(c) for c in ('workspace_id', 'task', 'subject', 'due_at')))
    installed = {r.id for r in conn.execute(
        sa.select(workspaces.c.id).where(workspaces.c.uninstalled_at.is_(None)))}
    rows = [{"workspace_id": w, "task": "nudges", "subject": "", "due_at": _ASAP} for w in installed]
    rows += [{"workspace_id": w, "task": "alerts", "subject": "", "due_at": _ASAP}
             for w in sorted({r.workspace_id for r in conn.execute(sa.select(rules.c.workspace_id))}
                             & installed)]
    rows += [{"workspace_id": r.workspace_id, "task": "digest", "subject": str(r.id), "due_at": _ASAP}
             for r in conn.execute(sa.select(subscriptions)) if r.workspace_id in installed]
    if rows:
        conn.execute(sa.insert(timers), rows)


def downgrade() -> None:
    op.drop_index('ix_timers_due_at', table_name='timers')
    op.drop_table('timers')
