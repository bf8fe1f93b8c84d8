"""person.oidc_subject: the OpenID Connect identity a person signs in with

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 14:45:00

``issuer#sub`` (an issuer has no fragment, so the first ``#`` splits it); unique, so one
identity at the provider is at most one person here.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("person") as t:
        t.add_column(
            sa.Column("oidc_subject", sqlmodel.sql.sqltypes.AutoString(length=600), nullable=True)
        )
        t.create_index("ix_person_oidc_subject", ["oidc_subject"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("person") as t:
        t.drop_index("ix_person_oidc_subject")
        t.drop_column("oidc_subject")
