"""log entry tags, pinned object versions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 13:10:00

Entries written before this revision have no tag: the vault tags them once, when it first
makes the client's log key (see ``vault.services.logauth.adopt_untagged``).
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("log_entry") as t:
        t.add_column(sa.Column("tag", sa.LargeBinary(), nullable=True))
    with op.batch_alter_table("record") as t:
        t.add_column(
            sa.Column("clip_version", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True)
        )
        t.add_column(
            sa.Column("meta_version", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True)
        )
    with op.batch_alter_table("checkpoint") as t:
        t.add_column(
            sa.Column(
                "object_version", sqlmodel.sql.sqltypes.AutoString(length=1024), nullable=True
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("checkpoint") as t:
        t.drop_column("object_version")
    with op.batch_alter_table("record") as t:
        t.drop_column("meta_version")
        t.drop_column("clip_version")
    with op.batch_alter_table("log_entry") as t:
        t.drop_column("tag")
