"""subscriptions.breakdown: the dimension a scheduled digest also breaks its numbers down by
(`/kpi digest daily 09:00 by source`: the biggest mover of each source); NULL: none, as before

Revision ID: 0011
Revises: 0010_alert_ids
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010_alert_ids'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a nullable column: SQLite adds it in place (no table copy)
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('breakdown', sa.String(length=32), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place on both (SQLite 3.35+): every schedule stays, only
    # the breakdown goes
    op.drop_column('subscriptions', 'breakdown')
