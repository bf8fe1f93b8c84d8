"""api tokens and idempotency keys

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:45:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_str = sqlmodel.sql.sqltypes.AutoString
_time = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "api_token",
        sa.Column("id", _str(length=40), nullable=False),
        sa.Column("secret_hash", _str(length=64), nullable=False),
        sa.Column("role", _str(length=20), nullable=False),
        sa.Column("client_id", _str(length=64), nullable=True),
        sa.Column("campaign", _str(length=64), nullable=True),
        sa.Column("label", _str(length=200), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=True),
        sa.Column("revoked_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["client.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_api_token_secret_hash", "api_token", ["secret_hash"], unique=True)
    op.create_table(
        "idempotency_key",
        sa.Column("token_id", _str(length=40), nullable=False),
        sa.Column("key", _str(length=200), nullable=False),
        sa.Column("request_hash", _str(length=64), nullable=False),
        sa.Column("record_id", _str(length=40), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(["token_id"], ["api_token.id"]),
        sa.ForeignKeyConstraint(["record_id"], ["record.id"]),
        sa.PrimaryKeyConstraint("token_id", "key"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_key")
    op.drop_index("ix_api_token_secret_hash", "api_token")
    op.drop_table("api_token")
