"""The database driver's own errors count as an outage, yet a SQLite vault never loads it.

psycopg costs ~9 MiB of RSS at import (issue 13, peak memory): :mod:`vault.services.outages`
looks its error types up only once a PostgreSQL engine has loaded it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vault.errors import BackendUnavailable
from vault.services.outages import unavailable

ROOT = Path(__file__).resolve().parents[1]


def test_a_sqlite_vault_does_not_import_psycopg(tmp_path):
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from vault import Vault\n"
        "from vault.config import load_settings\n"
        "from vault.services.context import create_vault\n"
        f"v = Vault(create_vault(load_settings(Path({str(tmp_path / 'v')!r}), env={{}})))\n"
        "v.add_client('telco-de')\n"
        "v.close()\n"
        "print('psycopg' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_psycopg_errors_raised_outside_sqlalchemy_are_an_outage():
    import psycopg

    for exc in (psycopg.OperationalError("gone"), psycopg.InterfaceError("closed")):
        found = unavailable(exc)
        assert isinstance(found, BackendUnavailable) and found.backend == "database"
        assert "gone" not in found.message and "closed" not in found.message
    assert unavailable(psycopg.DataError("bad value")) is None
