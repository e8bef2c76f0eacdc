"""workspaces.uninstalled_at: the app was uninstalled or its bot token revoked

Revision ID: 0004_lifecycle
Revises: 0003_api
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = '0004_lifecycle'
down_revision = '0003_api'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a nullable column: SQLite adds it in place (no table copy, so no cascade on the children)
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.add_column(sa.Column('uninstalled_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('workspaces', schema=None) as batch_op:
        batch_op.drop_column('uninstalled_at')
