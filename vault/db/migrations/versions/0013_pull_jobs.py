"""Pull jobs: recordings the vault fetches itself (CPaaS recording-ready webhooks)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 07:10:00

One row per recording a CPaaS announced; the evidence document only sealed.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "pull_job",
        sa.Column("id", _S(length=40), nullable=False),
        sa.Column("client_id", _S(length=64), nullable=False),
        sa.Column("campaign", _S(length=64), nullable=False),
        sa.Column("source", _S(length=16), nullable=False),
        sa.Column("source_key", _S(length=128), nullable=False),
        sa.Column("url", _S(length=2048), nullable=False),
        sa.Column("account", _S(length=64), nullable=True),
        sa.Column("state", _S(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_try", _T(), nullable=False),
        sa.Column("lease_until", _T(), nullable=True),
        sa.Column("last_error", _S(length=300), nullable=True),
        sa.Column("record_id", _S(length=40), nullable=True),
        sa.Column("created_at", _T(), nullable=False),
        sa.Column("updated_at", _T(), nullable=False),
        sa.Column("kek_id", _S(length=300), nullable=True),
        sa.Column("wrapped_dek", sa.LargeBinary(), nullable=True),
        sa.Column("meta_sealed", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["client.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "source", "source_key"),
    )
    op.create_index("ix_pull_job_state", "pull_job", ["state"])


def downgrade() -> None:
    op.drop_index("ix_pull_job_state", "pull_job")
    op.drop_table("pull_job")
