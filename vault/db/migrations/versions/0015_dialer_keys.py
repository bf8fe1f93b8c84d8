"""dialer keys (source signatures) and the campaign setting that requires them

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 07:30:00

One row per registered dialer public key of a client: a cache of the log's
``dialer.registered`` / ``dialer.revoked`` entries. Revises 0010 in its own branch; the
integrator re-chains it after the migrations merged before it.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "dialer_key",
        sa.Column("client_id", _S(length=64), nullable=False),
        sa.Column("key_id", _S(length=40), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("label", _S(length=200), nullable=False),
        sa.Column("registered_at", _T(), nullable=False),
        sa.Column("registered_seq", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", _T(), nullable=True),
        sa.Column("revoked_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["client.id"]),
        sa.PrimaryKeyConstraint("client_id", "key_id"),
    )
    # a plain ALTER TABLE ... ADD COLUMN on every database: a batch would rebuild the
    # campaign table on SQLite, which the records' foreign keys refuse
    op.add_column(
        "campaign",
        sa.Column(
            "require_source_signature", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )


def downgrade() -> None:
    # a plain ALTER TABLE ... DROP COLUMN (SQLite >= 3.35 has it too): Alembic would
    # rebuild the campaign table on SQLite, which the records' foreign keys refuse
    op.execute("ALTER TABLE campaign DROP COLUMN require_source_signature")
    op.drop_table("dialer_key")
