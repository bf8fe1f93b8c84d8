"""retention rules, holds and crypto-shredding

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:30:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_str = sqlmodel.sql.sqltypes.AutoString
_time = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    # batch mode: SQLite can only change a column's nullability by copying the table
    with op.batch_alter_table("campaign") as batch:
        batch.alter_column("retention_days", existing_type=sa.Integer(), nullable=True)
        batch.add_column(
            sa.Column("retention_basis", _str(length=20), nullable=False, server_default="recorded")
        )
    with op.batch_alter_table("record") as batch:
        batch.add_column(
            sa.Column("retention_rule", _str(length=200), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("shredded_at", _time(), nullable=True))
        batch.add_column(sa.Column("shred_reason", _str(length=20), nullable=True))
        batch.add_column(sa.Column("shred_rule", _str(length=200), nullable=True))
        batch.add_column(sa.Column("purged_at", _time(), nullable=True))
    op.create_index("ix_record_retain_until", "record", ["retain_until"])
    op.create_index("ix_record_shredded_at", "record", ["shredded_at"])
    op.create_table(
        "hold",
        sa.Column("id", _str(length=40), nullable=False),
        sa.Column("client_id", _str(length=64), nullable=False),
        sa.Column("record_id", _str(length=40), nullable=False),
        sa.Column("kind", _str(length=20), nullable=False),
        sa.Column("case_ref", _str(length=64), nullable=False),
        sa.Column("reason", _str(length=500), nullable=False),
        sa.Column("placed_by", _str(length=200), nullable=False),
        sa.Column("placed_at", _time(), nullable=False),
        sa.Column("release_requested_by", _str(length=200), nullable=True),
        sa.Column("release_requested_at", _time(), nullable=True),
        sa.Column("released_by", _str(length=200), nullable=True),
        sa.Column("released_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["client.id"]),
        sa.ForeignKeyConstraint(["record_id"], ["record.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_hold_client_id", "hold", ["client_id"])
    op.create_index("ix_hold_record_id", "hold", ["record_id"])
    op.create_index("ix_hold_released_at", "hold", ["released_at"])


def downgrade() -> None:
    op.drop_table("hold")
    op.drop_index("ix_record_shredded_at", "record")
    op.drop_index("ix_record_retain_until", "record")
    with op.batch_alter_table("record") as batch:
        for name in ("purged_at", "shred_rule", "shred_reason", "shredded_at", "retention_rule"):
            batch.drop_column(name)
    with op.batch_alter_table("campaign") as batch:
        batch.drop_column("retention_basis")
        batch.alter_column("retention_days", existing_type=sa.Integer(), nullable=False)
