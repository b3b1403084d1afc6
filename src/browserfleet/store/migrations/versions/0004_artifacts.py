"""Artifacts: downloads, the tabs each session opened (with their recordings) and CPU/memory samples.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from browserfleet.store.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "downloads",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("session_id", sa.String(36), sa.ForeignKey("sessions.id", ondelete="CASCADE"), index=True),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("stored_name", sa.Text, nullable=False),
        sa.Column("mime_type", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "session_pages",
        sa.Column(
            "session_id", sa.String(36), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("page_index", sa.Integer, primary_key=True),
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("recording", sa.String(16), nullable=False),
        sa.Column("frame_count", sa.Integer, nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=True),
        sa.Column("end_ms", sa.BigInteger, nullable=True),
        sa.Column("mp4_status", sa.String(16), nullable=False),
        sa.Column("mp4_completed_at", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "session_samples",
        sa.Column(
            "session_id", sa.String(36), sa.ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("at", UTCDateTime(), primary_key=True),
        sa.Column("cpu_percent", sa.Float, nullable=False),
        sa.Column("memory_bytes", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("session_samples")
    op.drop_table("session_pages")
    op.drop_table("downloads")
