"""The layers stay apart.

* The pure ledger (``vault/ledger``) and the offline bundle verifier (``vault/bundle``)
  run on an auditor's machine with nothing but an export or a bundle: they never load the
  database layer, neither when imported nor through any import in their code.
* Only ``vault/sealing`` touches the ``cryptography`` library (and ``rfc3161_client``,
  which hands out its certificates and CMS checks), so that nothing else picks
  a cipher, a nonce or a key size (tests and benchmarks may: they check sealing's output
  against the library independently).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VAULT = ROOT / "vault"
#: the pure packages, and what they must never reach
PURE = (VAULT / "ledger", VAULT / "bundle")
DB_MODULES = (
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "psycopg",
    "psycopg2",
    "vault.db",
    "vault.services",
)
#: what loading the offline verifiers must leave out of sys.modules
NOT_LOADED = ("sqlalchemy", "sqlmodel", "vault.db")
SEALING = VAULT / "sealing"
#: the libraries of cryptographic primitives only vault/sealing may import
CRYPTO_LIBRARIES = ("cryptography", "rfc3161_client")


# --- reading imports -----------------------------------------------------------------------


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _run_at_import(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements executed when the module is imported: not those in function
    bodies (run later, if ever) nor under ``if TYPE_CHECKING``."""
    for node in nodes:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _run_at_import(node.orelse)
        else:
            yield from _run_at_import(ast.iter_child_nodes(node))


def imports(path: Path, *, anywhere: bool) -> set[str]:
    """The modules ``path`` imports (absolute names; ``from a import b`` gives ``a`` and
    ``a.b``, b being perhaps a module); with ``anywhere``, also those inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes = ast.walk(tree) if anywhere else _run_at_import(tree.body)
    package = module_name(path) if path.name == "__init__.py" else module_name(path.parent)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def within(name: str, modules: Iterable[str]) -> bool:
    return any(name == m or name.startswith(m + ".") for m in modules)


def reachable(roots: Iterable[Path]) -> dict[str, list[str]]:
    """Every module the ``roots`` import, directly (any import in their code) or through
    the vault modules those load, with the chain of modules that leads to it."""
    roots = set(roots)
    chains: dict[str, list[str]] = {}
    todo = [(p, [module_name(p)]) for p in sorted(roots)]
    seen: set[Path] = set()
    while todo:
        path, chain = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in sorted(imports(path, anywhere=path in roots)):
            chains.setdefault(name, [*chain, name])
            if not within(name, ("vault", "cli")):
                continue
            # importing a.b.c runs a/__init__.py and a/b/__init__.py too
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                target = module_file(".".join(parts[:i]))
                if target is not None and target not in seen:
                    todo.append((target, [*chain, ".".join(parts[:i])]))
    return chains


def python_files(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*.py"))


# --- the pure ledger and the offline verifier ----------------------------------------------


def test_pure_packages_import_no_database_module():
    roots = python_files(*PURE)
    assert {module_name(p) for p in roots} >= {"vault.ledger.offline", "vault.bundle.verify"}
    chains = reachable(roots)
    assert "vault.ledger.checkpoint" in chains and "vault.report" in chains  # it does look
    # where each chain first reaches the database layer
    bad = [
        chain
        for name, chain in chains.items()
        if within(name, DB_MODULES) and not within(chain[-2], DB_MODULES)
    ]
    assert not bad, "\n".join(" -> ".join(chain) for chain in bad)


def test_import_check_sees_a_database_module():
    # the check above can fail: the log's database side is caught by it
    chains = reachable([VAULT / "db" / "log.py"])
    assert within("sqlalchemy", chains) and "vault.db.models" in chains


_LOADED = """
import importlib, json, pkgutil, sys
import vault.ledger, vault.bundle
for pkg in (vault.ledger, vault.bundle):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(m.name)
import vault.ledger.offline, vault.bundle.verify
from vault.bundle import verify_bundle
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_offline_verifiers_load_no_database():
    loaded = loaded_by(_LOADED)
    assert {"vault.ledger.offline", "vault.ledger.checkpoint", "vault.bundle.verify"} <= loaded
    assert sorted(m for m in loaded if within(m, NOT_LOADED)) == []


def test_loaded_check_sees_the_database():
    loaded = loaded_by("import json, sys, vault.db.log; print(json.dumps(sorted(sys.modules)))")
    assert {"sqlalchemy", "sqlmodel", "vault.db"} <= loaded


def test_opening_a_vault_loads_no_http_client_nor_tsa_parser():
    """httpx (with the CLI extras it drags in: ~6 MiB) and rfc3161-client (~2 MiB) come in
    where a witness, a TSA or the agent's uplink is used, not with ``Vault``:
    bench/memory.py's S3 ingest peak (< 100 MiB) has that little room."""
    loaded = loaded_by(
        "import json, sys\nfrom vault import Vault\nprint(json.dumps(sorted(sys.modules)))"
    )
    assert {"vault.services.witnessing", "vault.sealing.timestamps"} <= loaded
    unwanted = ("httpx", "rich", "pygments", "rfc3161_client")
    assert sorted(m for m in loaded if within(m, unwanted)) == []


# --- cryptography only in vault/sealing ----------------------------------------------------


def cryptography_users(files: Iterable[Path]) -> list[str]:
    return [
        str(p.relative_to(ROOT))
        for p in files
        if any(within(name, CRYPTO_LIBRARIES) for name in imports(p, anywhere=True))
    ]


def test_only_sealing_imports_cryptography():
    product = [p for p in python_files(VAULT, ROOT / "cli") if SEALING not in p.parents]
    assert len(product) > 50 and VAULT / "bundle" / "verify.py" in product
    assert cryptography_users(product) == []


def test_cryptography_check_sees_sealing():
    # the check above can fail: sealing's own modules are caught by it
    users = cryptography_users(python_files(SEALING))
    assert {"vault/sealing/signing.py", "vault/sealing/timestamps.py"} <= set(users)
