"""entries by (metric, dimension values, day, write_seq): a stock's latest value per rep, source,
campaign and product is read from this index instead of ranking the stock's whole history

Revision ID: 0008_partition
Revises: 0007_tracked
Create Date: 2026-12-07
"""

from alembic import op

revision = '0008_partition'
down_revision = '0007_tracked'
branch_labels = None
depends_on = None

COLUMNS = ['workspace_id', 'metric', 'source', 'rep', 'campaign', 'product', 'day', 'write_seq']


def upgrade() -> None:
    op.create_index('ix_entries_partition', 'entries', COLUMNS)


def downgrade() -> None:
    op.drop_index('ix_entries_partition', table_name='entries')
