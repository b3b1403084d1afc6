"""Contexts, extensions and CA certificates (each a project's resource, soft-deleted), and a project's
limit on session creations per minute.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from browserfleet.store.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _resource(name: str, *columns: sa.Column) -> None:  # type: ignore[type-arg]
    op.create_table(
        name,
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        *columns,
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("deleted_at", UTCDateTime(), nullable=True),
    )
    op.create_index(f"ix_{name}_project_id", name, ["project_id"])


def upgrade() -> None:
    _resource(
        "contexts",
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("archive_key", sa.Text(), nullable=True),
        sa.Column("archive_size", sa.BigInteger(), nullable=True),
        sa.Column("archive_sha256", sa.String(64), nullable=True),
        sa.Column("persisting_session", sa.String(36), nullable=True),
    )
    _resource(
        "extensions",
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("archive_key", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    _resource(
        "certificates",
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("creations_per_minute", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("creations_per_minute")
    for name in ("certificates", "extensions", "contexts"):
        op.drop_index(f"ix_{name}_project_id", name)
        op.drop_table(name)
