"""Source classification (paid or organic) per workspace; daily totals of means weighed by
the count logged with them (days_to_close by sales, onboarding_days by new_customers)

Revision ID: 0005_sources
Revises: 0004_lifecycle
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = '0005_sources'
down_revision = '0004_lifecycle'
branch_labels = None
depends_on = None

#: the weights of kpis.catalogue at this revision, frozen here as a migration must be
_WEIGHTS = {"days_to_close": "sales", "onboarding_days": "new_customers"}
_DIMS = ("source", "rep", "campaign", "product")


def upgrade() -> None:
    op.create_table('source_classes',
    sa.Column('workspace_id', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('paid', sa.Boolean(), nullable=False),
    sa.Column('set_by', sa.String(length=64), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'source')
    )
    conn = op.get_bind()
    entries = sa.table('entries', *(sa.column(c) for c in (
        'workspace_id', 'metric', 'day', 'author', 'value', *_DIMS)))
    totals = sa.table('daily_totals', *(sa.column(c) for c in (
        'workspace_id', 'metric', 'day', 'total', 'count')))
    for metric, weight in _WEIGHTS.items():
        rows = conn.execute(sa.select(entries).where(
            entries.c.metric.in_([metric, weight]))).all()
        partner = {(r.workspace_id, r.day, r.author, *(getattr(r, d) for d in _DIMS)): r.value
                   for r in rows if r.metric == weight}
        days: dict[tuple[str, object], list[float]] = {}
        for r in rows:
            if r.metric != metric:
                continue
            w = partner.get((r.workspace_id, r.day, r.author, *(getattr(r, d) for d in _DIMS)))
            w = w if w and w > 0 else 1.0
            slot = days.setdefault((r.workspace_id, r.day), [0.0, 0.0])
            slot[0] += r.value * w
            slot[1] += w
        for (workspace, day), (total, count) in days.items():
            conn.execute(totals.update().where(
                totals.c.workspace_id == workspace, totals.c.metric == metric, totals.c.day == day,
            ).values(total=total, count=round(count)))


def downgrade() -> None:
    op.drop_table('source_classes')
