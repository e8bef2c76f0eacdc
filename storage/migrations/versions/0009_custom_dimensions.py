"""A workspace's own dimensions: definitions.slot and .choices say which entry column (dim1..dim3)
holds a dimension's values and which values it allows; entries and changes get those columns,
and the entries' unique key and partition index take them in

Revision ID: 0009_dimensions
Revises: 0008_partition
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = '0009_dimensions'
down_revision = '0008_partition'
branch_labels = None
depends_on = None

_BUILT_IN = ['source', 'rep', 'campaign', 'product']
_SLOTS = ['dim1', 'dim2', 'dim3']
_KEY = ['workspace_id', 'metric', 'day', 'author']
_PARTITION = ['workspace_id', 'metric', *_BUILT_IN]


def _slot_columns() -> list[sa.Column[str]]:
    return [sa.Column(c, sa.String(length=64), nullable=False, server_default='') for c in _SLOTS]


def upgrade() -> None:
    # nullable columns: SQLite adds them in place (no copy of `definitions`)
    with op.batch_alter_table('definitions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('slot', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('choices', sa.Text(), nullable=True))
    with op.batch_alter_table('changes', schema=None) as batch_op:
        for column in _slot_columns():
            batch_op.add_column(column)
    op.drop_index('ix_entries_partition', table_name='entries')
    # nothing references `entries`, so SQLite's table copy (to change its unique key) loses
    # nothing; existing rows get '' in every slot, the same key as before
    with op.batch_alter_table('entries', schema=None) as batch_op:
        for column in _slot_columns():
            batch_op.add_column(column)
        batch_op.drop_constraint('uq_entries_key', type_='unique')
        batch_op.create_unique_constraint(
            'uq_entries_key', [*_KEY, *_BUILT_IN, *_SLOTS])
    op.create_index('ix_entries_partition', 'entries',
                    [*_PARTITION, *_SLOTS, 'day', 'write_seq'])


def downgrade() -> None:
    # entries that differ only by a workspace's own dimension would share one key without it:
    # refuse rather than merge or drop numbers
    conn = op.get_bind()
    tagged = conn.execute(sa.text(
        "SELECT count(*) FROM entries WHERE dim1 <> '' OR dim2 <> '' OR dim3 <> ''")).scalar()
    if tagged:
        raise RuntimeError(f"{tagged} entries carry a workspace's own dimension; remove those "
                           "entries before downgrading below 0009")
    op.drop_index('ix_entries_partition', table_name='entries')
    with op.batch_alter_table('entries', schema=None) as batch_op:
        batch_op.drop_constraint('uq_entries_key', type_='unique')
        batch_op.create_unique_constraint('uq_entries_key', [*_KEY, *_BUILT_IN])
        for column in _SLOTS:
            batch_op.drop_column(column)
    op.create_index('ix_entries_partition', 'entries', [*_PARTITION, 'day', 'write_seq'])
    for column in _SLOTS:
        op.drop_column('changes', column)
    op.drop_column('definitions', 'choices')
    op.drop_column('definitions', 'slot')
