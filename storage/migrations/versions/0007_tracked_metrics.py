"""workspaces.tracked: the metrics `/kpi track` chose, comma-separated in their order (NULL:
the packs' metrics, as before)

Revision ID: 0007_tracked
Revises: 0006_timers
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0007_tracked'
down_revision = '0006_timers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a nullable column: SQLite adds it in place (no table copy, so no cascade on the children)
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tracked', sa.Text(), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN in place on both (SQLite 3.35+): a batch table copy would
    # drop and recreate `workspaces`, and its children would go with it (ON DELETE CASCADE)
    op.drop_column('workspaces', 'tracked')
