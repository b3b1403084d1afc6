"""On PostgreSQL, give columns the range they have on SQLite: project and key names as TEXT, a project's
concurrency as BIGINT.

SQLite enforces neither VARCHAR lengths nor integer widths, so a 200-character project name or a
concurrency of 2**40 (both accepted by the CLI and the settings) is stored there, and was refused by
PostgreSQL's VARCHAR(128) and INTEGER. Nothing changes on SQLite.

Revision ID: 0005
Revises: 0004
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.types import TypeEngine

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# (table, column, type before, type after)
CHANGES: list[tuple[str, str, TypeEngine[Any], TypeEngine[Any]]] = [
    ("projects", "name", sa.String(128), sa.Text()),
    ("api_keys", "name", sa.String(128), sa.Text()),
    ("projects", "concurrency", sa.Integer(), sa.BigInteger()),
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, before, after in CHANGES:
        op.alter_column(table, column, type_=after, existing_type=before, existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, column, before, after in CHANGES:
        op.alter_column(table, column, type_=before, existing_type=after, existing_nullable=False)
