"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 21:51:22.486440
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "client",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("display_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "campaign",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["client.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("client_id", "name", name="uq_campaign_client_name"),
    )
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_campaign_client_id"), ["client_id"], unique=False)

    op.create_table(
        "log_entry",
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("record_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["client.id"],
        ),
        sa.PrimaryKeyConstraint("client_id", "seq"),
    )
    with op.batch_alter_table("log_entry", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_log_entry_record_id"), ["record_id"], unique=False)

    op.create_table(
        "log_head",
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["client.id"],
        ),
        sa.PrimaryKeyConstraint("client_id"),
    )
    op.create_table(
        "record",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("client_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("call_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("segment", sa.Integer(), nullable=False),
        sa.Column("order_ref", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("agent_id", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("sealed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("retain_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("phone_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("clip_fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("meta_fingerprint", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("media_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("codec", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("clip_size", sa.BigInteger(), nullable=False),
        sa.Column("clip_key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("clip_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("meta_key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("meta_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kek_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("wrapped_dek", sa.LargeBinary(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaign.id"],
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["client.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("campaign_id", "call_id", "segment", name="uq_record_call_segment"),
    )
    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_agent_id"), ["agent_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_record_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_record_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_record_order_ref"), ["order_ref"], unique=False)
        batch_op.create_index(batch_op.f("ix_record_phone_hash"), ["phone_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_record_recorded_at"), ["recorded_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_recorded_at"))
        batch_op.drop_index(batch_op.f("ix_record_phone_hash"))
        batch_op.drop_index(batch_op.f("ix_record_order_ref"))
        batch_op.drop_index(batch_op.f("ix_record_client_id"))
        batch_op.drop_index(batch_op.f("ix_record_campaign_id"))
        batch_op.drop_index(batch_op.f("ix_record_agent_id"))

    op.drop_table("record")
    op.drop_table("log_head")
    with op.batch_alter_table("log_entry", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_log_entry_record_id"))

    op.drop_table("log_entry")
    with op.batch_alter_table("campaign", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_campaign_client_id"))

    op.drop_table("campaign")
    op.drop_table("client")
