"""Index userMetadata string leaves for `q` queries.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from browserfleet.store.models import metadata_leaves

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "session_metadata",
        sa.Column(
            "session_id", sa.String(36), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("path", sa.Text, primary_key=True),
        sa.Column("project_id", sa.String(36), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_index("ix_session_metadata_lookup", "session_metadata", ["project_id", "path", "value"])
    sessions = sa.table(
        "sessions",
        sa.column("id", sa.String),
        sa.column("project_id", sa.String),
        sa.column("user_metadata", sa.JSON),
    )
    rows = op.get_bind().execute(sa.select(sessions).where(sessions.c.user_metadata.is_not(None)))
    leaves = [
        {"session_id": row.id, "project_id": row.project_id, "path": path, "value": value}
        for row in rows
        for path, value in metadata_leaves(row.user_metadata)
    ]
    if leaves:
        op.bulk_insert(table, leaves)


def downgrade() -> None:
    op.drop_index("ix_session_metadata_lookup", "session_metadata")
    op.drop_table("session_metadata")
