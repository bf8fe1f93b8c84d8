"""sign-in credentials, web sessions, sign-in throttling, desk access grants

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 14:40:00

The escalation desk's tables. Credential rows carry an HMAC tag under a keyring key
(``vault.sealing.credentials``), and so do sessions (stored as the SHA-256 of their id
only) and desk access grants.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "credential",
        sa.Column("person_id", _S(length=40), sa.ForeignKey("person.id"), primary_key=True),
        sa.Column("password_hash", _S(length=200), nullable=True),
        sa.Column("totp_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("totp_last_step", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", _T(), nullable=False),
        sa.Column("tag", sa.LargeBinary(), nullable=False),
    )
    op.create_table(
        "web_session",
        sa.Column("id_hash", _S(length=64), primary_key=True),
        sa.Column("person_id", _S(length=40), sa.ForeignKey("person.id"), nullable=False),
        sa.Column("stage", _S(length=10), nullable=False),
        sa.Column("csrf", _S(length=64), nullable=False),
        sa.Column("created_at", _T(), nullable=False),
        sa.Column("last_seen_at", _T(), nullable=False),
        sa.Column("tag", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_web_session_person_id", "web_session", ["person_id"])
    op.create_table(
        "signin_throttle",
        sa.Column("key", _S(length=64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", _T(), nullable=False),
        sa.Column("locked_until", _T(), nullable=True),
    )
    op.create_table(
        "desk_grant",
        sa.Column("session_hash", _S(length=64), primary_key=True),
        sa.Column("record_id", _S(length=40), primary_key=True),
        sa.Column("reason", _S(length=40), nullable=False),
        sa.Column("case_ref", _S(length=64), nullable=False),
        sa.Column("granted_at", _T(), nullable=False),
        sa.Column("tag", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("desk_grant")
    op.drop_table("signin_throttle")
    op.drop_index("ix_web_session_person_id", table_name="web_session")
    op.drop_table("web_session")
    op.drop_table("credential")
