"""tags on API token rows and sign-in throttle counters

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 07:10:00

``api_token.tag``: HMAC under the keyring's token key (``vault.services.tokens``); NULL on
the rows present now, which the vault adopts (tags) once, when it makes that key at the
next opening. ``signin_throttle``: counters are now named by keyed hashes and tagged, so
the rows counted under the old plain SHA-256 names are dropped (they only ever last a day).
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString
_T = sqlmodel.sql.sqltypes.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("api_token") as batch:
        batch.add_column(sa.Column("tag", sa.LargeBinary(), nullable=True))
    # counters last a day at most: made again, empty, with their tag column
    op.drop_table("signin_throttle")
    _throttle_table(tagged=True)


def downgrade() -> None:
    op.drop_table("signin_throttle")
    _throttle_table(tagged=False)
    with op.batch_alter_table("api_token") as batch:
        batch.drop_column("tag")


def _throttle_table(*, tagged: bool) -> None:
    columns = [
        sa.Column("key", _S(length=64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", _T(), nullable=False),
        sa.Column("locked_until", _T(), nullable=True),
    ]
    if tagged:
        columns.append(sa.Column("tag", sa.LargeBinary(), nullable=False))
    op.create_table("signin_throttle", *columns)
