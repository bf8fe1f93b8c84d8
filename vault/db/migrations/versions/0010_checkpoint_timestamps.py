"""RFC 3161 time-stamp tokens of checkpoints

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-02 17:30:00

One row per checkpoint and Time-Stamping Authority: the token, what it states (genTime,
serial) and where the copy under Object Lock is. Revises 0008 in its own branch; the
integrator re-chains it after the migrations merged before it.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "checkpoint_timestamp",
        sa.Column("client_id", _S(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("tsa", _S(length=64), nullable=False),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("gen_time", _T(), nullable=False),
        sa.Column("serial", _S(length=64), nullable=False),
        sa.Column("created_at", _T(), nullable=False),
        sa.Column("object_key", _S(length=300), nullable=False),
        sa.Column("object_version", _S(length=1024), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id", "size"],
            ["checkpoint.client_id", "checkpoint.size"],
            name="fk_checkpoint_timestamp_checkpoint",
        ),
        sa.PrimaryKeyConstraint("client_id", "size", "tsa"),
    )


def downgrade() -> None:
    op.drop_table("checkpoint_timestamp")
