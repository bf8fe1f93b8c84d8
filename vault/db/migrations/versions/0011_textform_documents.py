"""Textform documents sealed with records; campaigns' required document kinds

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 17:30:00

``document`` holds one row per sealed Textform document (TKG §54(3), EnWG §41b(1),
BGB §312h): its object, the commitment's log entry position, and its own data key wrapped
under the record's. ``campaign.required_documents`` lists the kinds a record needs;
``idempotency_key.document_id`` lets an attach be retried with the same key.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "document",
        sa.Column("id", _S(length=40), primary_key=True),
        sa.Column("client_id", _S(length=64), sa.ForeignKey("client.id"), nullable=False),
        sa.Column("record_id", _S(length=40), sa.ForeignKey("record.id"), nullable=False),
        sa.Column("kind", _S(length=40), nullable=False),
        sa.Column("media_type", _S(length=60), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", _S(length=64), nullable=False),
        sa.Column("object_key", _S(length=300), nullable=False),
        sa.Column("object_sha256", _S(length=64), nullable=False),
        sa.Column("object_version", _S(length=1024), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_at", _T(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_document_client_id", "document", ["client_id"])
    op.create_index("ix_document_record_id", "document", ["record_id"])
    op.create_index("ix_document_fingerprint", "document", ["fingerprint"])
    with op.batch_alter_table("campaign") as batch:
        batch.add_column(
            sa.Column("required_documents", _S(length=200), nullable=False, server_default="")
        )
    with op.batch_alter_table("idempotency_key") as batch:
        batch.add_column(sa.Column("document_id", _S(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_key") as batch:
        batch.drop_column("document_id")
    with op.batch_alter_table("campaign") as batch:
        batch.drop_column("required_documents")
    op.drop_index("ix_document_fingerprint", table_name="document")
    op.drop_index("ix_document_record_id", table_name="document")
    op.drop_index("ix_document_client_id", table_name="document")
    op.drop_table("document")
