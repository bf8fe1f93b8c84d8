"""Settings from vault.toml and the environment; the migrations match the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from vault.config import load_settings
from vault.db import migrate, open_engine
from vault.errors import ConfigError


def test_embedded_defaults(tmp_path: Path):
    s = load_settings(tmp_path, env={})
    assert s.storage == "local" and s.key_provider == "local"
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'vault.db'}"
    assert s.resolved_objects_dir == tmp_path / "objects"


def test_file_then_environment(tmp_path: Path):
    (tmp_path / "vault.toml").write_text(
        'name = "vault-a"\n[metadata]\nurl = "sqlite:////x.db"\n'
        '[storage]\nbackend = "s3"\n[storage.s3]\nbucket = "evidence"\n'
        'endpoint_url = "http://127.0.0.1:8333"\n'
    )
    s = load_settings(tmp_path, env={})
    assert (s.name, s.storage, s.s3.bucket, s.s3.endpoint_url) == (
        "vault-a",
        "s3",
        "evidence",
        "http://127.0.0.1:8333",
    )
    s = load_settings(
        tmp_path,
        env={
            "EVIDENCE_VAULT_DATABASE_URL": "postgresql+psycopg://u@h/db",
            "EVIDENCE_VAULT_S3_BUCKET": "other",
            "AWS_SECRET_ACCESS_KEY": "sk",
        },
    )
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.s3.bucket == "other" and s.s3.secret_access_key == "sk"
    assert "sk" not in repr(s)  # secrets never show up in reprs or logs


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("name = ", {}, "is not valid TOML"),
        ('[storage]\nbackend = "ftp"\n', {}, "unknown storage backend 'ftp'"),
        ('[storage]\nbackend = "s3"\n', {}, "no bucket is configured"),
        ('[storage.s3]\nendpoint_url = "x"\n', {}, r"\[storage.s3\] needs 'bucket'"),
        ('[keys]\nprovider = "vault"\n', {}, "unknown key provider 'vault'"),
        ('[web]\ntrusted_proxies = ["*"]\n', {}, r"trusted_proxies: '\*' is not an IP"),
        ('[web]\ntrusted_proxies = "10.0.0.1"\n', {}, "trusted_proxies must be a list"),
    ],
)
def test_bad_configuration(tmp_path: Path, toml, env, message):
    (tmp_path / "vault.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, env=env)


def test_trusted_proxies_are_addresses_or_networks(tmp_path: Path):
    (tmp_path / "vault.toml").write_text(
        '[web]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1", "192.168.1.7/24"]\n'
    )
    s = load_settings(tmp_path, env={})
    assert s.web_trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8", "::1/128", "192.168.1.0/24")
    assert load_settings(tmp_path / "none", env={}).web_trusted_proxies == ()


def test_bad_database_url():
    with pytest.raises(ConfigError, match="unsupported database URL scheme"):
        open_engine("mysql://root@localhost/x")


def _schema_diff(url: str) -> list:
    engine = open_engine(url)
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)


def test_migrations_match_models_sqlite(tmp_path: Path):
    assert _schema_diff(f"sqlite:///{tmp_path / 'm.db'}") == []


@pytest.mark.postgres
def test_migrations_match_models_postgres(pg_url):
    assert _schema_diff(pg_url) == []


def test_schema_head_constant_matches_alembic():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from vault.db.engine import MIGRATIONS, SCHEMA_HEAD

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(cfg).get_current_head() == SCHEMA_HEAD


def _upgrade_from_0002(url: str):
    """A vault at schema 0002 holding a campaign, then opened by this version."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from vault.db.engine import MIGRATIONS

    engine = open_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO client (id, display_name, retention_days, created_at) "
                "VALUES ('telco-de', 'Telco', NULL, '2026-11-20 00:00:00+00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO campaign (client_id, name, retention_days, created_at) "
                "VALUES ('telco-de', 'spring', 730, '2026-11-20 00:00:00+00:00')"
            )
        )
    migrate(engine)
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT name, retention_days, retention_basis FROM campaign")
        ).all()


def test_upgrade_from_0002_keeps_campaign_rules_sqlite(tmp_path: Path):
    assert _upgrade_from_0002(f"sqlite:///{tmp_path / 'old.db'}") == [("spring", 730, "recorded")]


@pytest.mark.postgres
def test_upgrade_from_0002_keeps_campaign_rules_postgres(pg_url):
    assert _upgrade_from_0002(pg_url) == [("spring", 730, "recorded")]


def _upgrade_0010_to_0011_and_back(url: str) -> tuple[list, list]:
    """A campaign made at schema 0010 needs no documents after 0011; 0011 downgrades."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect, text

    from vault.db.engine import MIGRATIONS

    engine = open_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0010")
        conn.execute(
            text(
                "INSERT INTO client (id, display_name, retention_days, created_at) "
                "VALUES ('telco-de', 'Telco', NULL, '2026-11-20 00:00:00+00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO campaign (client_id, name, retention_days, retention_basis, "
                "created_at) VALUES ('telco-de', 'spring', 730, 'recorded', "
                "'2026-11-20 00:00:00+00:00')"
            )
        )
    migrate(engine)
    with engine.connect() as conn:
        after = conn.execute(text("SELECT name, required_documents FROM campaign")).all()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0010")
    tables = sorted(inspect(engine).get_table_names())
    engine.dispose()
    return after, tables


def test_0011_adds_documents_and_downgrades_sqlite(tmp_path: Path):
    after, tables = _upgrade_0010_to_0011_and_back(f"sqlite:///{tmp_path / 'old.db'}")
    assert after == [("spring", "")]
    assert "document" not in tables and "campaign" in tables


@pytest.mark.postgres
def test_0011_adds_documents_and_downgrades_postgres(pg_url):
    after, tables = _upgrade_0010_to_0011_and_back(pg_url)
    assert after == [("spring", "")]
    assert "document" not in tables and "campaign" in tables
