"""A vault set up for the escalation desk: records of two tenants, persons with passwords."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.vaults import CAMPAIGN, CLIENT, clip, make_vault, order_meta
from vault import Vault
from vault.services import credentials, people

PASSWORD = "a long desk passphrase"
OTHER_CLIENT, OTHER_CAMPAIGN = "energy-at", "switch-2026"
OP = people.operator("local:test-operator")
#: client persons of CLIENT, one of OTHER_CLIENT, two global admins
PERSONS = {
    "carla": ("client", CLIENT),
    "chris": ("client", CLIENT),
    "olga": ("client", OTHER_CLIENT),
    "adam": ("admin", None),
    "bea": ("admin", None),
}


@dataclass
class DeskVault:
    vault: Vault
    records: list[str] = field(default_factory=list)
    other_record: str = ""

    @property
    def ctx(self):
        return self.vault.context


def desk_vault(home: Path, *, records: int = 3, clock=None, seconds: float = 2.0) -> DeskVault:
    v = make_vault(home, clock=clock)
    v.add_client(OTHER_CLIENT, "Energy AT")
    v.add_campaign(OTHER_CLIENT, OTHER_CAMPAIGN, retention_days=730)
    dv = DeskVault(v)
    tmp = home.parent / "clips"
    tmp.mkdir(exist_ok=True)
    for n in range(records):
        meta = order_meta(n, withdrawal_notice_span_ms=[1850, 1950])
        meta["callee"] = {"phone": f"+49151123456{70 + n}"}
        dv.records.append(v.ingest(clip(tmp, seconds=seconds, seed=n), meta).record_id)
    other = order_meta(99, client=OTHER_CLIENT, campaign=OTHER_CAMPAIGN)
    dv.other_record = v.ingest(clip(tmp, seed=99), other).record_id
    for handle, (role, client) in PERSONS.items():
        people.add_person(v.context, handle, role=role, client=client, by=OP)
        credentials.set_password(v.context, handle, PASSWORD, by=OP)
    return dv


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert m, "no CSRF field on the page"
    return m[1]


def sign_in(client, handle: str, password: str = PASSWORD):
    """Sign ``client`` (a TestClient) in through the form; returns the last response."""
    page = client.get("/desk/sign-in")
    token = re.search(r'name="token" value="([^"]+)"', page.text)[1]
    return client.post(
        "/desk/sign-in",
        data={"token": token, "handle": handle, "password": password},
        follow_redirects=False,
    )


__all__ = ["CAMPAIGN", "CLIENT", "PASSWORD", "DeskVault", "csrf_of", "desk_vault", "sign_in"]
