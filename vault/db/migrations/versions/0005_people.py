"""people: every API token belongs to a person

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-08 10:00:00

Existing tokens get one ``legacy-<token id>`` person each (nothing says which tokens
one human held). Legacy admins are left *pending*: the operator approves each one it
recognises (``evidence-vault person approve legacy-tk...``), so a pre-0005 admin with two
tokens does not silently become two admins for the four-eyes rule. Release requests of
holds made before persons existed are reset: they named tokens or free text, not persons;
the old request stays in the log, a person requests it again.
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_str = sqlmodel.sql.sqltypes.AutoString
_time = sqlmodel.sql.sqltypes.UTCDateTime
MIGRATION = "migration:0005"


def upgrade() -> None:
    op.create_table(
        "person",
        sa.Column("id", _str(length=40), nullable=False),
        sa.Column("handle", _str(length=64), nullable=False),
        sa.Column("display_name", _str(length=200), nullable=False),
        sa.Column("role", _str(length=20), nullable=False),
        sa.Column("client_id", _str(length=64), nullable=True),
        sa.Column("created_by", _str(length=200), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("approved_by", _str(length=200), nullable=True),
        sa.Column("approved_at", _time(), nullable=True),
        sa.Column("disabled_by", _str(length=200), nullable=True),
        sa.Column("disabled_at", _time(), nullable=True),
        sa.ForeignKeyConstraint(["client_id"], ["client.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_person_handle", "person", ["handle"], unique=True)
    with op.batch_alter_table("api_token") as batch:
        batch.add_column(sa.Column("person_id", _str(length=40), nullable=True))

    conn = op.get_bind()
    person = sa.table(
        "person",
        *(
            sa.column(c)
            for c in (
                "id",
                "handle",
                "display_name",
                "role",
                "client_id",
                "created_by",
                "created_at",
                "approved_by",
                "approved_at",
            )
        ),
    )
    token = sa.table(
        "api_token", sa.column("id"), sa.column("role"), sa.column("client_id"),
        sa.column("created_at"), sa.column("person_id"),
    )  # fmt: skip
    rows = conn.execute(sa.select(token.c.id, token.c.role, token.c.client_id, token.c.created_at))
    for tid, role, client, created in list(rows):
        approved = role != "admin"
        conn.execute(
            person.insert().values(
                id="p" + tid,
                handle=f"legacy-{tid.lower()}",
                display_name="",
                role=role,
                client_id=client,
                created_by=MIGRATION,
                created_at=created,
                approved_by=MIGRATION if approved else None,
                approved_at=created if approved else None,
            )
        )
        conn.execute(token.update().where(token.c.id == tid).values(person_id="p" + tid))

    with op.batch_alter_table("api_token") as batch:
        batch.alter_column("person_id", existing_type=_str(length=40), nullable=False)
        batch.create_foreign_key("fk_api_token_person_id", "person", ["person_id"], ["id"])
        batch.create_index("ix_api_token_person_id", ["person_id"])

    hold = sa.table(
        "hold", sa.column("released_at"), sa.column("release_requested_by"),
        sa.column("release_requested_at"),
    )  # fmt: skip
    conn.execute(
        hold.update()
        .where(hold.c.released_at.is_(None), hold.c.release_requested_by.is_not(None))
        .values(release_requested_by=None, release_requested_at=None)
    )


def downgrade() -> None:
    with op.batch_alter_table("api_token") as batch:
        batch.drop_index("ix_api_token_person_id")
        batch.drop_constraint("fk_api_token_person_id", type_="foreignkey")
        batch.drop_column("person_id")
    op.drop_index("ix_person_handle", "person")
    op.drop_table("person")
