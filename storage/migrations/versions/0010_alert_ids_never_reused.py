"""alert rule ids are never reused: a rule's delivery keys (`alert:{id}:{seq}`) name it, so a new
rule given a removed rule's id (SQLite hands out the highest id + 1 again) found its first alert
already delivered and never posted it. SQLite gets AUTOINCREMENT, its counter starting past every
rule id a delivery key names; PostgreSQL's sequence never reused an id.

Revision ID: 0010_alert_ids
Revises: 0009_dimensions
Create Date: 2026-12-07
"""

import re

import sqlalchemy as sa
from alembic import op

revision = '0010_alert_ids'
down_revision = '0009_dimensions'
branch_labels = None
depends_on = None

_RULE_IN_KEY = re.compile(r"alert[^:]*:(\d+)(?::|$)")


def _highest_rule_id(bind: sa.engine.Connection) -> int:
    highest = bind.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM alert_rules")).scalar_one()
    for (key,) in bind.execute(sa.text("SELECT key FROM deliveries WHERE key LIKE '%alert%'")):
        for found in _RULE_IN_KEY.finditer(key):
            highest = max(highest, int(found.group(1)))
    return int(highest)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return
    highest = _highest_rule_id(bind)
    with op.batch_alter_table('alert_rules', recreate='always',
                              table_kwargs={'sqlite_autoincrement': True}):
        pass
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'alert_rules'"))
    bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('alert_rules', :seq)"),
                 {"seq": highest})


def downgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    with op.batch_alter_table('alert_rules', recreate='always',
                              table_kwargs={'sqlite_autoincrement': False}):
        pass
