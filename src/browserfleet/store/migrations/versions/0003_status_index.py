"""Index sessions by (project, status, created_at), so a status filter is a range read in list order.

With (project, status) alone, SQLite preferred the (project, created_at) index, which spares the sort
but reads every session of the project: ~55 ms for `status=RUNNING` among 100,000 ended sessions.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_sessions_project_status", "sessions")
    op.create_index("ix_sessions_project_status_created", "sessions", ["project_id", "status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_sessions_project_status_created", "sessions")
    op.create_index("ix_sessions_project_status", "sessions", ["project_id", "status"])
