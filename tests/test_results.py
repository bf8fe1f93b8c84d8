"""The facade and the HTTP client answer with the same result types (vault.results)."""

from __future__ import annotations

import inspect
import typing
from datetime import UTC, datetime

import pytest

from vault.client import VaultClient
from vault.facade import Vault
from vault.results import (
    HoldInfo,
    InclusionProof,
    IssuedToken,
    PersonInfo,
    Receipt,
    RecordSummary,
    TokenInfo,
)

#: the same operation under another name on each side: (facade, client)
SAME_OPERATION = [
    ("ingest", "upload"),
    ("find", "search"),
    ("show", "record"),
    ("export_bundle", "bundle"),
    ("write_audio", "download_audio"),
    ("inclusion_proof", "inclusion"),
    ("consistency_proof", "consistency"),
    ("latest_checkpoint", "checkpoint"),
]


def _public(cls: type) -> set[str]:
    return {n for n, f in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


def _returns(cls: type, name: str) -> object:
    return typing.get_type_hints(getattr(cls, name))["return"]


def test_methods_of_one_name_return_one_type() -> None:
    shared = _public(Vault) & _public(VaultClient)
    assert {"holds", "place_hold", "create_token", "clients", "checkpoint"} <= shared
    differing = {n: (_returns(Vault, n), _returns(VaultClient, n)) for n in sorted(shared)}
    assert {n: pair for n, pair in differing.items() if pair[0] != pair[1]} == {}


@pytest.mark.parametrize(("local", "remote"), SAME_OPERATION)
def test_one_operation_under_two_names_returns_one_type(local: str, remote: str) -> None:
    assert _returns(Vault, local) == _returns(VaultClient, remote)


NOW = datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)
EXAMPLES = [
    Receipt("r1", "telco-de", "spring", 4, "ab" * 32, NOW, duplicate=True),
    Receipt(
        "r1",
        "telco-de",
        "spring",
        4,
        "ab" * 32,
        NOW,
        inclusion_proof=InclusionProof("telco-de", "r1", 4, "cd", 5, "ef", ["01"], "note"),
    ),
    RecordSummary("r1", "telco-de", "spring", "c1", 0, "ORD-1", "a7", NOW, 1500, "audio/wav", 4),
    HoldInfo("h1", "telco-de", "r1", "dispute", "CASE-1", "x", "person:pat", NOW, None, None, None),
    PersonInfo("pat", "", "admin", None, "local:op", NOW, "person:kim", NOW, None),
    TokenInfo("t1", "pat", "admin", None, None, "", NOW, None, NOW),
]


@pytest.mark.parametrize("result", EXAMPLES, ids=lambda r: type(r).__name__)
def test_the_json_reads_back_as_the_same_result(result: typing.Any) -> None:
    assert type(result).from_dict(result.to_dict()) == result


def test_an_issued_token_is_still_a_pair() -> None:
    info = EXAMPLES[-1]
    issued = IssuedToken.from_dict({**info.to_dict(), "token": "evt1_secret"})
    got_info, secret = issued
    assert (got_info, secret) == (info, "evt1_secret") and issued[1] == "evt1_secret"
    assert issued.to_dict()["token"] == "evt1_secret"


def test_a_field_reads_as_the_json_names_it() -> None:
    receipt = EXAMPLES[0]
    assert receipt["sealed_at"] == "2026-03-01T12:30:15.123Z" and receipt["duplicate"] is True
    assert receipt.get("inclusion_proof") is None
    with pytest.raises(KeyError):
        receipt["no-such-field"]
