"""People, not tokens: tokens belong to persons, four-eyes compares persons, and making
admins, tokens for others and disabling people is logged with who did it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlmodel import select

from cli.main import cli
from tests.support.vaults import CLIENT, clip, make_vault, order_meta
from vault import Vault
from vault.db import LogEntry, open_engine, read_session
from vault.db.engine import migrate
from vault.http.app import create_app
from vault.ledger.entry import parse_entry
from vault.services.people import GLOBAL_LOG


@pytest.fixture
def v(tmp_path):
    with make_vault(tmp_path / "v") as vault:
        yield vault


def log(vault, name: str, kind: str | None = None) -> list[dict]:
    with read_session(vault.context.engine) as s:
        rows = s.exec(
            select(LogEntry.entry).where(LogEntry.client_id == name).order_by(LogEntry.seq)
        )
        parsed = [parse_entry(bytes(raw)) for raw in rows]
    return [e for e in parsed if kind is None or e["type"] == kind]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def held_record(vault, tmp_path: Path) -> str:
    rid = vault.ingest(clip(tmp_path), order_meta(1)).record_id
    return vault.place_hold(rid, case_ref="LIT-1", reason="court order").id


def test_an_admin_with_two_tokens_or_a_puppet_admin_cannot_release_alone_http(v, tmp_path):
    hold = held_record(v, tmp_path)
    v.add_person("alice", role="admin")  # the operator's admins are approved at once
    v.add_person("carol", role="admin")
    v.add_person("bob", role="admin", client=CLIENT)
    alice = bearer(v.create_token("alice")[1])
    carol = bearer(v.create_token("carol")[1])
    bob = bearer(v.create_token("bob")[1])
    release = f"/v1/holds/{hold}/release"
    with TestClient(create_app(v.context)) as http:
        # alice mints herself a second token: allowed, and logged
        r = http.post("/v1/tokens", json={"person": "alice", "label": "laptop"}, headers=alice)
        assert r.status_code == 201 and r.json()["person"] == "alice"
        alice2 = bearer(r.json()["token"])
        minted = log(v, GLOBAL_LOG, "token.created")[-1]["body"]
        assert minted == {
            "token": r.json()["id"],
            "person": "alice",
            "role": "admin",
            "by": "person:alice",
        }
        assert http.post(release, headers=alice).json()["release_requested_by"] == "person:alice"
        refused = http.post(release, headers=alice2)
        assert refused.status_code == 403 and "four-eyes" in refused.json()["detail"]

        # a puppet admin is pending, and alice can neither arm nor approve it
        r = http.post("/v1/persons", json={"handle": "alice-2", "role": "admin"}, headers=alice)
        assert r.status_code == 201 and r.json()["status"] == "pending"
        [made] = [
            e["body"]
            for e in log(v, GLOBAL_LOG, "person.created")
            if e["body"]["person"] == "alice-2"
        ]
        assert made == {
            "person": "alice-2",
            "role": "admin",
            "by": "person:alice",
            "approved": False,
        }
        r = http.post("/v1/tokens", json={"person": "alice-2"}, headers=alice)
        assert r.status_code == 403 and "only alice-2" in r.json()["detail"]
        assert http.post("/v1/persons/alice-2/approve", headers=alice).status_code == 403
        puppet = bearer(v.create_token("alice-2")[1])  # the operator may arm it; still pending
        r = http.post(release, headers=puppet)
        assert r.status_code == 403 and "awaits a second admin's approval" in r.json()["detail"]
        # a tenant admin cannot approve an admin of every client
        assert http.post("/v1/persons/alice-2/approve", headers=bob).status_code == 403
        r = http.post("/v1/persons/alice-2/approve", headers=carol)
        assert r.status_code == 200 and r.json()["approved_by"] == "person:carol"
        assert log(v, GLOBAL_LOG, "person.approved")[-1]["body"] == {
            "person": "alice-2",
            "by": "person:carol",
            "created_by": "person:alice",
        }
        assert http.post("/v1/persons/alice-2/approve", headers=carol).status_code == 409

        # a second person completes the release
        done = http.post(release, headers=bob).json()
        assert (done["release_requested_by"], done["released_by"]) == ("person:alice", "person:bob")
    assert v.verify().clean  # the vault-wide log is verified like a client's


def test_tenant_admins_make_pending_admins_of_their_client(v, tmp_path):
    v.add_person("tina", role="admin", client=CLIENT)
    v.add_person("tom", role="admin", client=CLIENT)
    tina = bearer(v.create_token("tina")[1])
    tom = bearer(v.create_token("tom")[1])
    with TestClient(create_app(v.context)) as http:
        body = {"handle": "tia", "role": "admin", "client": CLIENT, "display_name": "Tia"}
        r = http.post("/v1/persons", json=body, headers=tina)
        assert r.status_code == 201 and r.json()["status"] == "pending"
        assert http.post("/v1/persons/tia/approve", headers=tina).status_code == 403
        assert http.post("/v1/persons/tia/approve", headers=tom).json()["status"] == "active"
        client_log = [
            (e["type"], e["body"]) for e in log(v, CLIENT) if e["type"].startswith("person")
        ]
        assert client_log[-2:] == [
            (
                "person.created",
                {"person": "tia", "role": "admin", "by": "person:tina", "approved": False},
            ),
            ("person.approved", {"person": "tia", "by": "person:tom", "created_by": "person:tina"}),
        ]
        assert "Tia" not in json.dumps(log(v, CLIENT))  # the display name stays off the log
        # an approved tenant admin creating a client user: active at once, logged
        r = http.post(
            "/v1/persons", json={"handle": "cl-1", "role": "client", "client": CLIENT}, headers=tom
        )
        assert r.json()["status"] == "active"
        r = http.post("/v1/tokens", json={"person": "cl-1"}, headers=tom)
        assert log(v, CLIENT, "token.created")[-1]["body"]["by"] == "person:tom"


def test_disabled_persons_tokens_stop_at_once_and_it_is_logged(v, tmp_path):
    rid = v.ingest(clip(tmp_path), order_meta(1)).record_id
    v.add_person("carla", role="client", client=CLIENT)
    v.add_person("root", role="admin")
    first, second = v.create_token("carla")[1], v.create_token("carla")[1]
    root = bearer(v.create_token("root")[1])
    with TestClient(create_app(v.context)) as http:
        r = http.get(f"/v1/records/{rid}", headers=bearer(first))
        assert r.status_code == 200
        [access] = log(v, CLIENT, "evidence.accessed")
        assert access["body"]["principal"] == "person:carla"
        r = http.post("/v1/persons/carla/disable", headers=root)
        assert r.status_code == 200 and r.json()["status"] == "disabled"
        for secret in (first, second):
            r = http.get(f"/v1/records/{rid}", headers=bearer(secret))
            assert r.status_code == 401 and "carla was disabled" in r.json()["detail"]
        assert log(v, CLIENT, "person.disabled")[-1]["body"] == {
            "person": "carla",
            "by": "person:root",
        }
        assert http.post("/v1/tokens", json={"person": "carla"}, headers=root).status_code == 403
        # idempotent: logged once
        assert http.post("/v1/persons/carla/disable", headers=root).status_code == 200
        assert len(log(v, CLIENT, "person.disabled")) == 1
        r = http.delete(f"/v1/tokens/{v.create_token('root')[0].id}", headers=root)
        assert r.status_code == 200
        assert log(v, GLOBAL_LOG, "token.revoked")[-1]["body"]["by"] == "person:root"


def test_cli_names_persons_and_refuses_pending_or_unknown_ones(tmp_path, monkeypatch):
    monkeypatch.delenv("EVIDENCE_VAULT_MASTER_KEY", raising=False)
    home = tmp_path / "cli"
    with make_vault(home) as v:
        rid = v.ingest(clip(tmp_path), order_meta(1)).record_id
        hold = v.place_hold(rid, case_ref="LIT-1", reason="court").id
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(cli, ["--vault", str(home), *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    # the operator bootstraps the first admins: approved at once
    assert "pending" not in run("person", "add", "alice", "--role", "admin")
    run("person", "add", "bob", "--role", "admin", "--client", CLIENT)
    # alice makes herself a puppet: pending, and it cannot take a four-eyes step
    assert "pending" in run("person", "add", "alice2", "--role", "admin", "--as", "alice")
    run("hold", "release", hold, "--as", "alice")
    assert "awaits" in run("hold", "release", hold, "--as", "alice2", code=9)
    assert "four-eyes" in run("person", "approve", "alice2", "--as", "alice", code=9)
    # an admin's token is minted by that admin or the operator, never by another admin
    assert "only alice2" in run("token", "create", "--person", "alice2", "--as", "alice", code=9)
    run("hold", "release", hold, "--as", "ghost", code=4)
    run("person", "add", "carla", "--role", "client", "--client", CLIENT, "--as", "bob")
    run("hold", "release", hold, "--as", "carla", code=9)  # not an admin
    listed = json.loads(run("--json", "person", "list"))
    assert {p["handle"]: p["status"] for p in listed} == {
        "alice": "active",
        "alice2": "pending",
        "bob": "active",
        "carla": "active",
    }
    run("show", rid, "--as", "carla")
    run("person", "disable", "carla", "--as", "bob")
    assert "disabled" in run("show", rid, "--as", "carla", code=9)
    out = json.loads(run("--json", "hold", "release", hold, "--as", "bob"))
    assert out["released_by"] == "person:bob"

    with Vault.open(home) as v:
        made = {e["body"]["person"]: e["body"] for e in log(v, GLOBAL_LOG, "person.created")}
        assert made["alice"]["by"].startswith("local:") and made["alice"]["approved"] is True
        assert made["alice2"] == {
            "person": "alice2",
            "role": "admin",
            "by": "person:alice",
            "approved": False,
        }
        client_made = [e["body"] for e in log(v, CLIENT, "person.created")]
        assert {"person": "carla", "role": "client", "by": "person:bob", "approved": True} in (
            client_made
        )
        [access] = log(v, CLIENT, "evidence.accessed")
        assert access["body"] == {"principal": "person:carla", "what": "metadata"}
        assert v.verify().clean


def _upgrade_from_0004(url: str) -> tuple[list, list]:
    """A vault at schema 0004 with tokens and a pending release, opened by this version."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text

    from vault.db.engine import MIGRATIONS

    engine = open_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0004")
    t = "'2026-11-20 00:00:00+00:00'"
    with engine.begin() as conn:
        conn.execute(
            text(f"INSERT INTO client (id, display_name, created_at) VALUES ('telco-de', 'T', {t})")
        )
        for tid, role, client in [("tkaa", "admin", "NULL"), ("tkbb", "dialer", "'telco-de'")]:
            conn.execute(
                text(
                    "INSERT INTO api_token (id, secret_hash, role, client_id, label, created_at) "
                    f"VALUES ('{tid}', '{tid}hash', '{role}', {client}, '', {t})"
                )
            )
    migrate(engine)
    with engine.connect() as conn:
        persons = conn.execute(
            text("SELECT handle, role, client_id, approved_at IS NULL FROM person ORDER BY handle")
        ).all()
        tokens = conn.execute(text("SELECT id, person_id FROM api_token ORDER BY id")).all()
    engine.dispose()
    return [tuple(p) for p in persons], [tuple(t) for t in tokens]


def test_upgrade_from_0004_gives_each_token_a_legacy_person_sqlite(tmp_path: Path):
    persons, tokens = _upgrade_from_0004(f"sqlite:///{tmp_path / 'old.db'}")
    # legacy admins wait for the operator's approval; others work on
    assert persons == [("legacy-tkaa", "admin", None, 1), ("legacy-tkbb", "dialer", "telco-de", 0)]
    assert tokens == [("tkaa", "ptkaa"), ("tkbb", "ptkbb")]


@pytest.mark.postgres
def test_upgrade_from_0004_gives_each_token_a_legacy_person_postgres(pg_url):
    persons, tokens = _upgrade_from_0004(pg_url)
    assert [p[:3] for p in persons] == [
        ("legacy-tkaa", "admin", None),
        ("legacy-tkbb", "dialer", "telco-de"),
    ]
    assert [bool(p[3]) for p in persons] == [True, False]
    assert tokens == [("tkaa", "ptkaa"), ("tkbb", "ptkbb")]
