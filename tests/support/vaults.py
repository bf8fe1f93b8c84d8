"""Fixtures that open real vaults on every backend combination the product supports.

Object store: local directory, moto (in-process AWS mock), SeaweedFS (a real S3 server).
Metadata: SQLite (WAL) and the PostgreSQL on 127.0.0.1:5432 (a fresh database per test).
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vault import Vault
from vault.config import S3Settings, load_settings
from vault.services.context import create_vault
from vault.synth import MEDIA_TYPES, write_clip

PG_ADMIN_URL = os.environ.get(
    "EVIDENCE_VAULT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

CLIENT, CAMPAIGN = "telco-de", "fibre-upsell-2026q4"
RECORDED_AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        with psycopg.connect(_dsn(PG_ADMIN_URL), connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {exc.__class__.__name__}"


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


class PgDatabase:
    """A throw-away database on the test PostgreSQL server."""

    def __init__(self) -> None:
        import psycopg

        self.name = "evtest_" + secrets.token_hex(6)
        with psycopg.connect(_dsn(PG_ADMIN_URL), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(_dsn(PG_ADMIN_URL), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def make_vault(
    home: Path,
    *,
    storage: str = "local",
    database_url: str = "",
    s3: S3Settings | None = None,
    clock=None,
) -> Vault:
    settings = load_settings(home, env={})
    settings = replace(settings, storage=storage, database_url=database_url, s3=s3)
    ctx = create_vault(settings)
    if clock is not None:
        ctx.clock = clock
    v = Vault(ctx)
    v.add_client(CLIENT, "Telco DE")
    v.add_campaign(CLIENT, CAMPAIGN, retention_days=730)
    return v


def reopen(v: Vault) -> Vault:
    """The same vault opened afresh from its settings (as another process would)."""
    from vault.services.context import open_vault

    return Vault(open_vault(v.settings))


def order_meta(n: int = 0, *, recorded_at: datetime | None = None, **over) -> dict:
    # a fixed time: the same call must produce the same metadata in every test
    recorded_at = recorded_at or RECORDED_AT
    meta = {
        "client": CLIENT,
        "campaign": CAMPAIGN,
        "call_id": f"dialer-7f3a-{n:06d}",
        "segment": 1,
        "order_ref": f"ORD-2026-{n:06d}",
        "agent_id": "agent-042",
        "recorded_at": recorded_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "callee": {"phone": "+4915112345678"},
        "consent": {"recording_at_ms": 200},
        "identity": {
            "method": "name+date_of_birth+postcode",
            "confirmed": {
                "name": "Max Mustermann",
                "date_of_birth": "1980-01-31",
                "postcode": "10115",
            },
            "span_ms": [300, 900],
        },
        "intent": {
            "product": "Fibre 250",
            "price": "39.99 EUR/month",
            "term": "24 months",
            "statement": "Ja, ich möchte den Vertrag so abschließen.",
            "span_ms": [1000, 1800],
        },
    }
    meta.update(over)
    return meta


def clip(tmp: Path, fmt: str = "wav-pcm16", seconds: float = 2.0, seed: int = 0) -> Path:
    from vault.synth import EXTENSIONS

    return write_clip(
        tmp / f"clip-{fmt}-{seed}-{uuid.uuid4().hex[:6]}{EXTENSIONS[fmt]}", fmt, seconds, seed=seed
    )


__all__ = [
    "CAMPAIGN",
    "CLIENT",
    "MEDIA_TYPES",
    "PgDatabase",
    "clip",
    "make_vault",
    "order_meta",
    "postgres_available",
    "reopen",
]


@pytest.fixture
def pg_url() -> Iterator[str]:
    reason = postgres_available()
    if reason:
        pytest.skip(reason)
    db = PgDatabase()
    try:
        yield db.url
    finally:
        db.drop()


def person_token(
    ctx,
    role: str,
    client: str | None,
    *,
    handle: str | None = None,
    campaign: str | None = None,
    **token_kw,
):
    """A token of a person of ``role`` and ``client``, both made by the operator.

    A fresh person per call unless ``handle`` names one (created the first time); returns
    ``(TokenInfo, secret)`` like :func:`vault.services.tokens.create_token`.
    """
    from sqlmodel import select

    from vault.db import read_session
    from vault.db.models import Person
    from vault.services import people, tokens

    op = people.operator("local:test-operator")
    handle = handle or f"{role}-{secrets.token_hex(4)}"
    with read_session(ctx.engine) as s:
        known = s.exec(select(Person).where(Person.handle == handle)).first()
    if known is None:
        people.add_person(ctx, handle, role=role, client=client, by=op)
    return tokens.create_token(ctx, person=handle, by=op, campaign=campaign, **token_kw)
