"""A vault on SQLite and on PostgreSQL, and the attacker that holds its database.

Checkpoints are signed only on demand here (the cadence is set out of reach), except
the one the vault signs after its first append: every attack on a later entry works on
the unsigned tail, which is where a database writer has the most room.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.attacks.attacker import Attacker
from tests.support.vaults import CAMPAIGN, CLIENT, PgDatabase, postgres_available
from vault import Vault
from vault.config import load_settings
from vault.services.context import create_vault

OTHER_CAMPAIGN = "winback-2026q4"


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def vault(request: pytest.FixtureRequest, tmp_path):
    database_url = ""
    if request.param == "postgres":
        reason = postgres_available()
        if reason:
            pytest.skip(reason)
        pg = PgDatabase()
        request.addfinalizer(pg.drop)
        database_url = pg.url
    settings = replace(
        load_settings(tmp_path / "vault", env={}),
        storage="local",
        database_url=database_url,
        checkpoint_every=1_000_000,
        checkpoint_seconds=1_000_000_000,
    )
    v = Vault(create_vault(settings))
    v.add_client(CLIENT, "Telco DE")
    v.add_campaign(CLIENT, CAMPAIGN, retention_days=730)
    v.add_campaign(CLIENT, OTHER_CAMPAIGN, retention_days=730)
    yield v
    v.close()


@pytest.fixture
def attacker(vault):
    a = Attacker(vault.settings.resolved_database_url, vault.settings.home)
    yield a
    a.close()
