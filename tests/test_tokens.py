"""API tokens: random, shown once, stored as a hash, scoped, revocable, expiring; each
belongs to a person."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlmodel import select

from cli.main import cli
from tests.support.vaults import CAMPAIGN, CLIENT, make_vault, person_token
from vault.db import read_session
from vault.db.models import ApiToken
from vault.errors import InvalidEvidence, NotFound, PermissionDenied, Unauthenticated
from vault.services import people, tokens

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
OPERATOR = people.operator("local:test")


@pytest.fixture
def vault(tmp_path):
    now = [NOW]
    v = make_vault(tmp_path / "v", clock=lambda: now[0])
    v.now = now
    yield v
    v.close()


def test_token_is_random_shown_once_and_stored_hashed(vault):
    info, secret = person_token(vault.context, "client", CLIENT, handle="carla")
    other_info, other = person_token(vault.context, "client", CLIENT, handle="carla")
    assert secret.startswith("evt1_") and len(secret) == 48 and secret != other
    with read_session(vault.context.engine) as s:
        rows = list(s.exec(select(ApiToken)))
    stored = json.dumps([r.model_dump(mode="json", exclude={"tag"}) for r in rows])
    assert secret not in stored and secret.removeprefix("evt1_") not in stored
    assert {r.secret_hash for r in rows} == {tokens.hash_token(secret), tokens.hash_token(other)}
    who = tokens.authenticate(vault.context, secret)
    assert (who.token_id, who.role, who.client, who.name) == (
        info.id,
        "client",
        CLIENT,
        "person:carla",
    )
    assert who.person == "carla" and info.person == "carla"
    assert "token" not in info.to_dict() and other_info.id != info.id


@pytest.mark.parametrize(
    "bearer", [None, "", "Bearer x", "evt1_" + "A" * 43, "evt1_" + "x" * 300, "evt2_abc"]
)
def test_unknown_or_malformed_tokens_are_refused(vault, bearer):
    with pytest.raises(Unauthenticated) as exc:
        tokens.authenticate(vault.context, bearer)
    assert "evt1_A" not in exc.value.message  # the offered secret is never echoed


def test_revoked_and_expired_tokens_stop_working_at_once(vault):
    info, secret = person_token(
        vault.context, "dialer", CLIENT, expires_at=NOW + timedelta(hours=1)
    )
    assert tokens.authenticate(vault.context, secret).role == "dialer"
    vault.now[0] = NOW + timedelta(hours=1)
    with pytest.raises(Unauthenticated, match=f"token {info.id} expired on 2026-11-21"):
        tokens.authenticate(vault.context, secret)

    info2, secret2 = person_token(vault.context, "auditor", CLIENT)
    tokens.revoke_token(vault.context, info2.id, by=OPERATOR)
    tokens.revoke_token(vault.context, info2.id, by=OPERATOR)  # idempotent
    with pytest.raises(Unauthenticated, match=f"token {info2.id} was revoked"):
        tokens.authenticate(vault.context, secret2)
    with pytest.raises(NotFound):
        tokens.revoke_token(vault.context, "tk-nope", by=OPERATOR)
    with pytest.raises(NotFound):  # a tenant admin cannot reach another tenant's token
        tokens.revoke_token(vault.context, info.id, by=OPERATOR, client="other-client")


@pytest.mark.parametrize(
    ("person", "token", "field"),
    [
        ({"role": "root", "client": CLIENT}, None, "role"),
        ({"role": "dialer", "client": None}, None, "client"),
        ({"role": "client", "client": CLIENT}, {"campaign": CAMPAIGN}, "campaign"),
        (
            {"role": "dialer", "client": CLIENT},
            {"expires_at": NOW - timedelta(seconds=1)},
            "expires_at",
        ),
    ],
)
def test_invalid_token_requests(vault, person, token, field):
    with pytest.raises(InvalidEvidence) as exc:
        people.add_person(vault.context, "pat", **person, by=OPERATOR)
        tokens.create_token(vault.context, person="pat", by=OPERATOR, **token)
    assert [e.field for e in exc.value.errors] == [field]


def test_scope_checks(vault):
    with pytest.raises(NotFound):
        person_token(vault.context, "dialer", "ghost")
    with pytest.raises(NotFound):
        person_token(vault.context, "dialer", CLIENT, campaign="ghost")
    with pytest.raises(NotFound):
        tokens.create_token(vault.context, person="nobody", by=OPERATOR)
    _, secret = person_token(vault.context, "dialer", CLIENT, campaign=CAMPAIGN)
    dialer = tokens.authenticate(vault.context, secret)
    dialer.require("dialer")
    with pytest.raises(PermissionDenied):
        dialer.require("client", "admin")
    with pytest.raises(NotFound):  # another tenant: as if it did not exist, before the role
        dialer.require_client("other-client", "dialer")
    _, admin = person_token(vault.context, "admin", None)
    assert tokens.authenticate(vault.context, admin).sees("any-client")


def test_token_commands(tmp_path, monkeypatch):
    monkeypatch.delenv("EVIDENCE_VAULT_MASTER_KEY", raising=False)
    home = str(tmp_path / "cli")
    runner = CliRunner()

    def run(*args, code=0):
        result = runner.invoke(cli, ["--vault", home, *args], catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result.output

    run("init")
    run("client", "add", CLIENT, "--retention-days", "730")
    run("person", "add", "dialer-7", "--role", "dialer", "--client", CLIENT)
    made = json.loads(
        run(
            "--json",
            "token",
            "create",
            "--person",
            "dialer-7",
            "--expires",
            "90d",
            "--label",
            "dialer-host-7",
        )
    )
    assert made["token"].startswith("evt1_") and made["role"] == "dialer"
    assert made["person"] == "dialer-7" and made["client"] == CLIENT
    listed = run("token", "list")
    assert made["id"] in listed and "dialer-host-7" in listed and made["token"] not in listed
    assert made["token"] not in run("--json", "token", "list")
    run("token", "revoke", made["id"])
    assert "revoked" in run("token", "list")
    run("person", "add", "cl", "--role", "client", code=3)  # a client person needs --client
    run("person", "add", "x", "--role", "nobody", "--client", CLIENT, code=2)
    run("token", "create", "--person", "ghost", code=4)
    run("token", "create", "--role", "dialer", "--person", "dialer-7", code=2)  # no --role now

    # --expires: the accepted units are named, a past time is refused before anything is made
    short = run("token", "create", "--person", "dialer-7", "--expires", "1s", code=2)
    assert "--expires" in short and "d (days), h (hours), m (minutes)" in short
    assert "d (days)" in run("token", "create", "--person", "dialer-7", "--expires", "90", code=2)
    too_long = ("--expires", "99999999999d")
    assert "too long" in run("token", "create", "--person", "dialer-7", *too_long, code=2)
    garbled = run("token", "create", "--person", "dialer-7", "--expires", "soon", code=2)
    assert "neither a lifetime" in garbled and "ISO-8601" in garbled
    past = run("token", "create", "--person", "dialer-7", "--expires", "2020-01-01", code=2)
    assert "not in the future" in past
    assert "not in the future" in run(
        "token", "create", "--person", "dialer-7", "--expires", "0d", code=2
    )
    # a rule of the token itself speaks of the token, not of evidence metadata
    run("person", "add", "viewer", "--role", "client", "--client", CLIENT)
    scoped = run("token", "create", "--person", "viewer", "--campaign", "x", code=3)
    assert "the token is invalid: campaign" in scoped and "metadata" not in scoped
    assert len(json.loads(run("--json", "token", "list"))) == 1  # none of them was made


# -- token rows are tagged against a database writer ----------------------------------------


def _sql(vault, statement: str, **params) -> None:
    from sqlalchemy import text

    from vault.db import write_session

    with write_session(vault.context.engine) as s:
        s.exec(text(statement), params=params)


def test_a_database_writer_cannot_mint_repoint_or_unrevoke_a_token(vault):
    ctx = vault.context
    people.add_person(ctx, "root2", role="admin", client=None, by=OPERATOR)
    admin_info, admin_secret = tokens.create_token(ctx, person="root2", by=OPERATOR)
    info, secret = person_token(ctx, "client", CLIENT, handle="carla")
    assert tokens.authenticate(ctx, secret).role == "client"
    # 1. the writer's own secret put on the admin's row: the row no longer verifies
    mine = "evt1_" + "x" * 43
    _sql(
        vault,
        "UPDATE api_token SET secret_hash = :h WHERE id = :i",
        h=tokens.hash_token(mine),
        i=admin_info.id,
    )
    with pytest.raises(Unauthenticated, match="not valid"):
        tokens.authenticate(ctx, mine)
    # 2. a client's token re-pointed to the admin role
    _sql(vault, "UPDATE api_token SET role = 'admin', client_id = NULL WHERE id = :i", i=info.id)
    with pytest.raises(Unauthenticated, match="not valid"):
        tokens.authenticate(ctx, secret)
    assert set(tokens.tampered_tokens(ctx)) == {admin_info.id, info.id}
    findings = [f.detail for f in vault.verify().findings if "API token" in f.detail]
    assert len(findings) == 2 and secret not in " ".join(findings)
    # 3. a revoked token un-revoked
    other, other_secret = person_token(ctx, "client", CLIENT, handle="chris")
    tokens.revoke_token(ctx, other.id, by=OPERATOR)
    _sql(vault, "UPDATE api_token SET revoked_at = NULL WHERE id = :i", i=other.id)
    with pytest.raises(Unauthenticated, match="not valid"):
        tokens.authenticate(ctx, other_secret)
    # 4. a whole row inserted, copying a real row's tag
    _sql(
        vault,
        "INSERT INTO api_token (id, secret_hash, person_id, role, client_id, campaign, label,"
        " created_at, expires_at, revoked_at, tag) SELECT 'tok_forged', :h, person_id, role,"
        " client_id, campaign, label, created_at, expires_at, revoked_at, tag FROM api_token"
        " WHERE id = :i",
        h=tokens.hash_token("evt1_" + "y" * 43),
        i=admin_info.id,
    )
    with pytest.raises(Unauthenticated, match="not valid"):
        tokens.authenticate(ctx, "evt1_" + "y" * 43)
    # 5. a nulled tag is not adopted again when the vault reopens
    _sql(vault, "UPDATE api_token SET tag = NULL WHERE id = :i", i=info.id)
    from tests.support.vaults import reopen

    again = reopen(vault)
    try:
        with pytest.raises(Unauthenticated):
            tokens.authenticate(again.context, secret)
    finally:
        again.close()
    assert admin_secret  # untouched secret, refused only through its changed row


def test_tokens_from_before_tags_are_adopted_once_at_opening(vault, tmp_path):
    ctx = vault.context
    info, secret = person_token(ctx, "client", CLIENT, handle="carla")
    # as a vault from before tags: no tag on the row, no token key in the keyring
    _sql(vault, "UPDATE api_token SET tag = NULL")
    keyring = ctx.keys._local
    keyring._modify(lambda state: bool(state.keys.pop("api-tokens", None)))
    from tests.support.vaults import reopen

    again = reopen(vault)
    try:
        assert tokens.authenticate(again.context, secret).token_id == info.id
        assert tokens.tampered_tokens(again.context) == []
    finally:
        again.close()


def test_token_tag_vector_is_stable():
    from vault.sealing.credentials import TokenSeal

    seal = TokenSeal(bytes(range(32)))
    items = (
        "tok_1",
        "ab" * 32,
        "p1",
        "client",
        "telco-de",
        "-",
        "2026-11-21T12:00:00.000Z",
        "-",
        "-",
    )
    # HMAC-SHA256(HKDF-SHA256(key, info="evidence-vault/v1 api token tag"),
    #             encode_items("evidence-vault/v1 api token", *items)); docs/formats.md
    assert seal.tag(*items).hex() == (
        "d00d1d706db9d872573db2c965713b47757ef3746a51765488b18c9a533a7085"
    )
    assert seal.check(seal.tag(*items), *items)
    assert not seal.check(seal.tag(*items), *items[:-1], "2026-11-22T12:00:00.000Z")
    assert not seal.check(None, *items)
