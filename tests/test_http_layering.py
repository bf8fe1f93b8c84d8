"""The HTTP layer stays thin: vault/http imports only services, errors and the domain.

Allowed from the vault: ``vault.services.*``, ``vault.errors``, ``vault.inputs``,
``vault.identifiers`` and the domain model ``vault.evidence``, ``vault.http.*`` itself, the
desk ``vault.web.*`` that ``app.py`` mounts, and the package's
``__version__``. Never the database, sealing, storage or ledger layers (``vault.db``,
``vault.sealing``, ``vault.storage``, ``vault.ledger``) nor anything else: what a route
needs of them is a service's job. Every import statement counts, also those inside
functions and ``TYPE_CHECKING`` blocks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HTTP_DIR = Path(__file__).resolve().parent.parent / "vault" / "http"
ALLOWED_MODULES = ("vault.errors", "vault.inputs", "vault.identifiers", "vault.evidence")
#: ``vault.web`` is the other front end (the desk and /docs): app.py mounts it beside the API
ALLOWED_PACKAGES = ("vault.services", "vault.http", "vault.web")
#: names a module of vault/http may import from the ``vault`` package itself
ALLOWED_ROOT_NAMES = ("__version__",)


def _allowed(module: str) -> bool:
    if module in ALLOWED_MODULES:
        return True
    return any(module == p or module.startswith(p + ".") for p in ALLOWED_PACKAGES)


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def layering_violations(source: str, package: str = "vault.http") -> list[str]:
    """Each forbidden vault import of ``source`` (a module of ``package``), as text."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            if module == "vault":
                # ``from vault import db`` reaches a layer as surely as ``import vault.db``
                names = [a.name for a in node.names if a.name not in ALLOWED_ROOT_NAMES]
                modules = [f"vault.{n}" for n in names]
            else:
                modules = [module]
        else:
            continue
        for module in modules:
            if (module == "vault" or module.startswith("vault.")) and not _allowed(module):
                found.append(f"line {node.lineno}: {module}")
    return found


@pytest.mark.parametrize("path", sorted(HTTP_DIR.glob("*.py")), ids=lambda p: p.name)
def test_http_modules_import_only_services_errors_and_domain(path: Path) -> None:
    assert layering_violations(path.read_text(encoding="utf-8")) == []


def test_http_package_is_covered() -> None:
    names = {p.name for p in HTTP_DIR.glob("*.py")}
    assert {"app.py", "deps.py", "records.py", "ledger.py", "admin.py"} <= names


@pytest.mark.parametrize(
    ("source", "culprit"),
    [
        ("from vault.db import Record", "vault.db"),
        ("import vault.sealing.stream", "vault.sealing.stream"),
        ("from vault import storage", "vault.storage"),
        ("from vault import __version__, ledger", "vault.ledger"),
        ("def f():\n    from vault.ledger.entry import entry_hash", "vault.ledger.entry"),
        ("if TYPE_CHECKING:\n    from vault.spool import SpoolFile", "vault.spool"),
        ("from ..db import Record", "vault.db"),
        ("from .. import sealing", "vault.sealing"),
    ],
)
def test_the_rule_catches_a_layer_import(source: str, culprit: str) -> None:
    assert [v.split(": ")[1] for v in layering_violations(source)] == [culprit]


@pytest.mark.parametrize(
    "source",
    [
        "from vault.services.retrieve import open_object",
        "from vault.services import holds",
        "from vault.errors import NotFound",
        "from vault.identifiers import SLUG",
        "from vault.evidence import parse_evidence",
        "from vault import __version__",
        "from vault.http.deps import Caller",
        "from . import problems",
        "from fastapi import APIRouter",
        "import vaultish",
    ],
)
def test_the_rule_lets_the_allowed_through(source: str) -> None:
    assert layering_violations(source) == []
