"""witness cosignatures of checkpoints, and witness refusals

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 17:30:00

C2SP tlog-witness: each cosignature line a witness returned for a checkpoint, and each
refusal (a witness that saw a forked or rolled-back checkpoint says so with a status).
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "witness_cosignature",
        sa.Column("client_id", _S(length=64), sa.ForeignKey("client.id"), primary_key=True),
        sa.Column("size", sa.BigInteger(), primary_key=True),
        sa.Column("witness", _S(length=300), primary_key=True),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("line", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", _T(), nullable=False),
        sa.Column("object_key", _S(length=300), nullable=True),
    )
    op.create_table(
        "witness_refusal",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("client_id", _S(length=64), sa.ForeignKey("client.id"), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("witness", _S(length=300), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("reason", _S(length=300), nullable=False),
        sa.Column("witness_size", sa.BigInteger(), nullable=True),
        sa.Column("refused_at", _T(), nullable=False),
    )
    op.create_index("ix_witness_refusal_client_id", "witness_refusal", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_witness_refusal_client_id", table_name="witness_refusal")
    op.drop_table("witness_refusal")
    op.drop_table("witness_cosignature")
