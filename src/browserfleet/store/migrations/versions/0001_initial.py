"""Projects, API keys, sessions and server secrets.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from browserfleet.store.models import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("default_timeout", sa.Integer, nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False, index=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("end_reason", sa.Text, nullable=True),
        sa.Column("keep_alive", sa.Boolean, nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("context_id", sa.String(64), nullable=True),
        sa.Column("user_metadata", sa.JSON, nullable=True),
        sa.Column("create_params", sa.JSON, nullable=False),
        sa.Column("proxy_bytes", sa.BigInteger, nullable=False),
        sa.Column("avg_cpu_usage", sa.Integer, nullable=True),
        sa.Column("memory_usage", sa.BigInteger, nullable=True),
        sa.Column("browser_pid", sa.Integer, nullable=True),
        sa.Column("browser_profile", sa.Text, nullable=True),
    )
    op.create_index("ix_sessions_project_created", "sessions", ["project_id", "created_at"])
    op.create_index("ix_sessions_project_status", "sessions", ["project_id", "status"])
    op.create_table(
        "server_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("server_secrets")
    op.drop_index("ix_sessions_project_status", "sessions")
    op.drop_index("ix_sessions_project_created", "sessions")
    op.drop_table("sessions")
    op.drop_table("api_keys")
    op.drop_table("projects")
