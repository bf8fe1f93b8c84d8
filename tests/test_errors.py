"""One error table: each VaultError class states its HTTP status and exit code, and the
API's problem, the command's exit code and the client's exception all follow it."""

from __future__ import annotations

import asyncio
import inspect
import json

import click
import pytest
from click.testing import CliRunner

import cli.main  # noqa: F401  (loads every error class the command defines)
import vault.http.app  # loads the routes' error classes
import vault.ledger.checkpoint  # noqa: F401
from cli._common import VaultGroup
from vault import errors
from vault.client import VaultApiError, api_error
from vault.errors import (
    ConfigError,
    Conflict,
    FieldError,
    InvalidEvidence,
    StorageError,
    TamperDetected,
    VaultError,
    error_classes,
)
from vault.http import problems

#: kind -> (HTTP status, exit code), as docs/api.md and the table in cli/main.py state them
TABLE = {
    "vault-error": (500, 7),
    "invalid-evidence": (422, 3),
    "invalid-request": (422, 3),
    "invalid-audio": (422, 3),
    "unsupported-media-type": (415, 3),
    "invalid-document": (422, 3),
    "not-found": (404, 4),
    "shredded": (410, 4),
    "conflict": (409, 5),
    "tamper-detected": (409, 7),
    "permission-denied": (403, 9),
    "source-signature-required": (403, 9),
    "unknown-dialer-key": (403, 9),
    "revoked-dialer-key": (403, 9),
    "bad-source-signature": (422, 3),
    "unauthenticated": (401, 7),
    "config-error": (503, 6),
    "sealing-error": (500, 7),
    "decryption-failed": (500, 7),
    "key-unavailable": (500, 7),
    "storage-error": (503, 7),
    "object-exists": (503, 7),
    "object-missing": (503, 7),
    "object-locked": (503, 7),
    "backend-unavailable": (503, 10),
    "outcome-unknown": (503, 10),
}
EXIT_CODES = {3, 4, 5, 6, 7, 9, 10}  # the documented codes of an error (cli/main.py)


def _every_subclass(cls: type) -> list[type[VaultError]]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_every_subclass(sub)]
    return out


ALL = [VaultError, *dict.fromkeys(_every_subclass(VaultError))]


def _instance(cls: type[VaultError]) -> VaultError:
    if issubclass(cls, VaultApiError):
        return cls(cls.http_status, {"type": f"/problems/{cls.kind}", "detail": "refused"})
    if issubclass(cls, InvalidEvidence):
        return cls([FieldError("field", "is wrong")])
    if "_PARTS" in vars(cls):  # IdempotencyMismatch: named by the part that differs
        return cls("clip")
    if len(inspect.signature(cls).parameters) == 0:  # one fixed message (sign-in refusals)
        return cls()
    return cls("refused")


def _local_ancestor(cls: type) -> type[VaultError]:
    """The nearest class of vault.errors: what a remote vault can say of this error."""
    return next(c for c in cls.__mro__ if c.__module__ == errors.__name__)


def test_the_table_is_exactly_todays():
    assert {c.kind: (c.http_status, c.exit_code) for c in error_classes()} == TABLE


@pytest.mark.parametrize("cls", ALL, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_error_has_a_status_and_an_exit_code(cls):
    exc = _instance(cls)
    assert isinstance(exc.http_status, int) and 400 <= exc.http_status <= 599
    assert exc.exit_code in EXIT_CODES


@pytest.mark.parametrize("cls", ALL, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_the_api_problem_maps_back_to_the_same_class(cls):
    exc = _instance(cls)
    response = asyncio.run(problems.vault_error(None, exc))  # type: ignore[arg-type]
    body = json.loads(response.body)
    assert response.status_code == body["status"] == exc.http_status
    assert body["type"] == f"/problems/{exc.kind}"
    remote = api_error(response.status_code, body)
    assert isinstance(remote, _local_ancestor(cls)), type(remote).__mro__
    assert (remote.kind, remote.http_status, remote.exit_code) == (
        exc.kind,
        exc.http_status,
        exc.exit_code,
    )
    assert remote.message == exc.message


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.kind)
def test_the_command_exits_with_the_errors_code(cls):
    @click.group(cls=VaultGroup)
    def root() -> None:
        pass

    @root.command()
    def fail() -> None:
        raise _instance(cls)

    result = CliRunner().invoke(root, ["fail"], obj={})
    assert result.exit_code == TABLE[cls.kind][1], result.output
    as_json = CliRunner().invoke(root, ["fail", "--json"], obj={})
    assert as_json.exit_code == TABLE[cls.kind][1]
    assert json.loads(as_json.output)["error"]["kind"] == cls.kind


def test_a_problem_of_unknown_kind_is_the_class_of_its_status():
    unknown = {"type": "/problems/newer-kind", "detail": "x"}
    conflict = api_error(409, unknown)
    assert isinstance(conflict, Conflict) and not isinstance(conflict, TamperDetected)
    assert isinstance(api_error(503, unknown), StorageError)
    assert isinstance(api_error(410, unknown), errors.Shredded)
    # no class stands for 422 (evidence and audio are different refusals)
    assert type(api_error(422, unknown)) is VaultApiError
    assert type(api_error(418, unknown)) is VaultApiError


def test_remote_errors_stay_catchable_by_their_status_class():
    # a 409 was always a Conflict and a 503 always "retry later" to client code
    tamper = api_error(409, {"type": "/problems/tamper-detected"})
    assert isinstance(tamper, TamperDetected) and isinstance(tamper, Conflict)
    config = api_error(503, {"type": "/problems/config-error"})
    assert isinstance(config, ConfigError) and isinstance(config, StorageError)
