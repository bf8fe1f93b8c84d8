"""The ``aws-kms`` key provider and the per-client key router, against moto's KMS.

A vault is created with the local keyring, then its ``vault.toml`` is rewritten to give
client ``telco-de`` an ``aws-kms`` key and the vault is reopened, as an operator would.

moto (5.2) does not enforce key states: a disabled key or one pending deletion still
encrypts and decrypts. The ``kms_key_states`` fixture makes moto refuse them with the
errors AWS KMS returns (``DisabledException``, ``KMSInvalidStateException``), so the
vault's handling of those answers is tested with real KMS responses on the wire.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from sqlmodel import select

from tests.support.vaults import CAMPAIGN, CLIENT, clip, make_vault, order_meta
from vault import Vault
from vault.config import ClientKeySettings, load_settings
from vault.db import Record, read_session
from vault.errors import ConfigError, DecryptionFailed, KeyUnavailable
from vault.sealing import AwsKmsProvider, KeyRouter, WrappedKey
from vault.sealing.kms import VAULT_CONTEXT, make_kms_client
from vault.services.context import open_vault

REGION = "eu-central-1"
OTHER = "telco-at"  # a client without key configuration: local keyring
T0 = datetime(2026, 11, 21, tzinfo=UTC)
#: past the end of retention (RECORDED_AT + 730 days) and its month, plus the sweep's day
SWEEP_AT = datetime(2028, 12, 2, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def kms(moto_aws):
    return boto3.client("kms", region_name=REGION)


@pytest.fixture
def key_arn(kms) -> str:
    return kms.create_key(Description="evidence-vault telco-de")["KeyMetadata"]["Arn"]


@pytest.fixture
def kms_key_states(moto_aws, monkeypatch):
    """Make moto refuse disabled keys and keys pending deletion, as AWS KMS does."""
    from moto.core.exceptions import JsonRESTError
    from moto.kms.models import KmsBackend

    def require_usable(backend, key_id: str) -> None:
        key = backend.keys[backend.any_id_to_key_id(key_id)]
        if key.key_state == "Disabled":
            raise JsonRESTError("DisabledException", f"{key.arn} is disabled.")
        if key.key_state == "PendingDeletion":
            raise JsonRESTError("KMSInvalidStateException", f"{key.arn} is pending deletion.")

    encrypt, decrypt = KmsBackend.encrypt, KmsBackend.decrypt

    def strict_encrypt(self, key_id, plaintext, encryption_context):
        require_usable(self, key_id)
        return encrypt(self, key_id, plaintext, encryption_context)

    def strict_decrypt(self, ciphertext_blob, encryption_context, key_id=None):
        plaintext, arn = decrypt(self, ciphertext_blob, encryption_context, key_id)
        require_usable(self, arn)
        return plaintext, arn

    monkeypatch.setattr(KmsBackend, "encrypt", strict_encrypt)  # GenerateDataKey too
    monkeypatch.setattr(KmsBackend, "decrypt", strict_decrypt)


def configure(v: Vault, clients: dict[str, ClientKeySettings], clock=None) -> Vault:
    """Rewrite the vault's vault.toml with these client key settings and reopen it."""
    home = v.settings.home
    settings = replace(v.settings, key_clients=clients)
    (home / "vault.toml").write_text(settings.to_toml(), encoding="utf-8")
    clock = clock or v.context.clock
    v.close()
    v = Vault(open_vault(load_settings(home, env={})))
    v.context.clock = clock
    return v


def kms_client(key_arn: str, **over) -> dict[str, ClientKeySettings]:
    return {CLIENT: ClientKeySettings(CLIENT, "aws-kms", key_arn, **over)}


@pytest.fixture
def local_vault(tmp_path):
    v = make_vault(tmp_path / "vault", clock=Clock(T0))
    v.add_client(OTHER, "Telco AT")
    v.add_campaign(OTHER, CAMPAIGN, retention_days=730)
    yield v
    v.close()


@pytest.fixture
def kms_vault(local_vault, key_arn):
    v = configure(local_vault, kms_client(key_arn))
    yield v
    v.close()


def ingest(v: Vault, tmp_path: Path, n: int, client: str = CLIENT) -> tuple[str, Path]:
    src = clip(tmp_path, seed=n)
    return v.ingest(src, order_meta(n, client=client)).record_id, src


def row(v: Vault, record_id: str) -> Record:
    with read_session(v.context.engine) as s:
        return s.get(Record, record_id)


def read_back(v: Vault, tmp_path: Path, record_id: str) -> bytes:
    return v.write_audio(record_id, tmp_path / f"out-{record_id}.bin").read_bytes()


# -- sealing and opening ------------------------------------------------------------------


def test_kms_client_round_trip(kms_vault, key_arn, kms, tmp_path):
    rid, src = ingest(kms_vault, tmp_path, 1)
    assert read_back(kms_vault, tmp_path, rid) == src.read_bytes()
    report = kms_vault.verify(deep=True)
    assert report.clean, report.findings
    rec = row(kms_vault, rid)
    assert rec.kek_id == f"aws-kms:{key_arn}"
    # the wrapped key is a KMS ciphertext bound to exactly this encryption context
    context = {"tenant": CLIENT, "record": rid, "vault": VAULT_CONTEXT}
    plain = kms.decrypt(CiphertextBlob=rec.wrapped_dek, EncryptionContext=context, KeyId=key_arn)
    assert len(plain["Plaintext"]) == 32
    with pytest.raises(kms.exceptions.InvalidCiphertextException):
        kms.decrypt(CiphertextBlob=rec.wrapped_dek, EncryptionContext={"tenant": CLIENT})
    # no local KEK was made for the KMS client; the index key stays local
    keys = kms_vault.context.keys
    assert keys.local.kek_ids(CLIENT) == []
    assert keys.kek_ids(CLIENT) == [f"aws-kms:{key_arn}"]
    assert keys.provider_name(CLIENT) == "aws-kms"
    assert len(keys.index_key(CLIENT)) == 32


def test_wrong_context_or_tampered_blob_does_not_open(kms_vault, tmp_path):
    rid, _ = ingest(kms_vault, tmp_path, 1)
    other, _ = ingest(kms_vault, tmp_path, 2)
    rec = row(kms_vault, rid)
    keys = kms_vault.context.keys
    wrapped = WrappedKey(rec.kek_id, rec.wrapped_dek)
    with pytest.raises(DecryptionFailed, match="does not open for tenant 'telco-de'") as exc:
        keys.unwrap(wrapped, CLIENT, {"record": other})
    assert "+49" not in str(exc.value)
    with pytest.raises(DecryptionFailed):
        keys.unwrap(wrapped, OTHER, {"record": rid})  # another tenant
    flipped = bytearray(rec.wrapped_dek)
    flipped[-1] ^= 1
    with pytest.raises(DecryptionFailed):
        keys.unwrap(WrappedKey(rec.kek_id, bytes(flipped)), CLIENT, {"record": rid})
    with pytest.raises(DecryptionFailed, match="empty"):
        keys.unwrap(WrappedKey(rec.kek_id, b""), CLIENT, {"record": rid})
    with pytest.raises(ValueError, match="set by the key provider"):
        keys.unwrap(wrapped, CLIENT, {"record": rid, "tenant": OTHER})
    assert len(keys.unwrap(wrapped, CLIENT, {"record": rid})) == 32


@pytest.mark.usefixtures("kms_key_states")
def test_disabled_or_deleted_key_is_unavailable(kms_vault, kms, key_arn, tmp_path):
    rid, src = ingest(kms_vault, tmp_path, 1)
    key = key_arn.rsplit("/", 1)[1]  # moto's key admin calls take the bare key id
    kms.disable_key(KeyId=key)
    with pytest.raises(KeyUnavailable, match="is disabled") as exc:
        read_back(kms_vault, tmp_path, rid)
    assert "enable-key" in exc.value.hint
    with pytest.raises(KeyUnavailable, match="is disabled"):
        ingest(kms_vault, tmp_path, 2)  # nor can new evidence be sealed
    findings = kms_vault.verify(deep=True).findings
    assert [f.record for f in findings] == [rid]
    assert "is disabled" in findings[0].detail
    kms.enable_key(KeyId=key)
    kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
    with pytest.raises(KeyUnavailable, match="current state") as exc:
        read_back(kms_vault, tmp_path, rid)
    assert "cancel-key-deletion" in exc.value.hint
    kms.cancel_key_deletion(KeyId=key)
    kms.enable_key(KeyId=key)
    assert read_back(kms_vault, tmp_path, rid) == src.read_bytes()


def test_missing_key_is_unavailable(kms_vault, tmp_path):
    rid, _ = ingest(kms_vault, tmp_path, 1)
    rec = row(kms_vault, rid)
    gone = rec.kek_id.rsplit("/", 1)[0] + "/00000000-0000-0000-0000-000000000000"
    with pytest.raises(KeyUnavailable, match="does not exist"):
        kms_vault.context.keys.unwrap(WrappedKey(gone, rec.wrapped_dek), CLIENT, {"record": rid})


def test_unconfigured_client_stays_local(kms_vault, tmp_path):
    rid, src = ingest(kms_vault, tmp_path, 1, client=OTHER)
    assert row(kms_vault, rid).kek_id == f"local:{OTHER}:exp-2028-11:1"
    assert kms_vault.context.keys.provider_name(OTHER) == "local"
    assert read_back(kms_vault, tmp_path, rid) == src.read_bytes()


def test_records_survive_switching_providers(local_vault, key_arn, tmp_path):
    before, src_before = ingest(local_vault, tmp_path, 1)
    assert row(local_vault, before).kek_id.startswith(f"local:{CLIENT}:")
    v = configure(local_vault, kms_client(key_arn))
    after, src_after = ingest(v, tmp_path, 2)
    assert row(v, after).kek_id == f"aws-kms:{key_arn}"
    assert read_back(v, tmp_path, before) == src_before.read_bytes()
    assert read_back(v, tmp_path, after) == src_after.read_bytes()
    assert v.verify(deep=True).clean
    # the old local KEK is still listed next to the KMS key
    assert v.context.keys.kek_ids(CLIENT) == sorted(
        [f"aws-kms:{key_arn}", f"local:{CLIENT}:exp-2028-11:1"]
    )
    # back to local: new evidence in the keyring, KMS records still open (endpoint kept) ...
    v = configure(v, {CLIENT: ClientKeySettings(CLIENT, "local", key_arn)})
    third, _ = ingest(v, tmp_path, 3)
    assert row(v, third).kek_id.startswith(f"local:{CLIENT}:")
    assert read_back(v, tmp_path, after) == src_after.read_bytes()
    # ... and without any entry, through the region named in the record's key ARN
    v = configure(v, {})
    assert read_back(v, tmp_path, after) == src_after.read_bytes()
    assert v.verify(deep=True).clean
    v.close()


def test_rewrapping_a_kms_record_uses_kms_encrypt(kms_vault, tmp_path):
    rid, _ = ingest(kms_vault, tmp_path, 1)
    rec = row(kms_vault, rid)
    keys = kms_vault.context.keys
    dek = keys.unwrap(WrappedKey(rec.kek_id, rec.wrapped_dek), CLIENT, {"record": rid})
    again = keys.wrap(CLIENT, "exp-2030-01", dek, {"record": rid})
    assert again.kek_id == rec.kek_id and again.blob != rec.wrapped_dek
    assert keys.unwrap(again, CLIENT, {"record": rid}) == dek


def test_kms_keys_have_no_vault_lifecycle(kms_vault, key_arn):
    keys = kms_vault.context.keys
    kek = f"aws-kms:{key_arn}"
    with pytest.raises(ConfigError, match="does not delete KMS keys") as exc:
        keys.destroy_kek(kek)
    assert "schedule-key-deletion" in exc.value.hint
    with pytest.raises(ConfigError, match="no generations"):
        keys.new_kek_generation(CLIENT, "exp-2028-11")
    assert keys.destroyed_at(kek) is None and keys.kek_created_at(kek) is None
    # local clients keep their generations
    assert keys.new_kek_generation(OTHER, "exp-2028-11") == f"local:{OTHER}:exp-2028-11:1"


def test_one_kms_client_per_endpoint_shared_by_threads(local_vault, key_arn):
    made = []

    def factory(**kwargs):
        made.append(kwargs)
        time.sleep(0.05)  # widen the window for a race
        return make_kms_client(**kwargs)

    router = KeyRouter(
        local_vault.context.keys.local,
        {
            CLIENT: ClientKeySettings(CLIENT, "aws-kms", key_arn),
            "telco-ch": ClientKeySettings("telco-ch", "aws-kms", key_arn),
        },
        kms_client_factory=factory,
    )
    barrier = threading.Barrier(8)

    def seal(i: int) -> bytes:
        barrier.wait()
        tenant = CLIENT if i % 2 else "telco-ch"
        dek, wrapped = router.generate(tenant, "exp-2028-11", {"record": f"r{i}"})
        assert router.unwrap(wrapped, tenant, {"record": f"r{i}"}) == dek
        return dek

    with ThreadPoolExecutor(8) as pool:
        deks = list(pool.map(seal, range(8)))
    assert len(set(deks)) == 8
    assert made == [{"region": REGION, "endpoint_url": None}]


# -- retention ------------------------------------------------------------------------------


def test_retention_shreds_kms_records_and_the_sweep_skips_kms_keys(kms_vault, key_arn, tmp_path):
    rid, _ = ingest(kms_vault, tmp_path, 1)
    local_rid, _ = ingest(kms_vault, tmp_path, 2, client=OTHER)
    kms_vault.context.clock.now = SWEEP_AT
    report = kms_vault.run_retention()
    assert sorted(report.shredded) == sorted([rid, local_rid])
    assert report.keks_destroyed == [f"local:{OTHER}:exp-2028-11:1"]
    assert row(kms_vault, rid).wrapped_dek == b""
    assert kms_vault.context.keys.kek_ids(CLIENT) == [f"aws-kms:{key_arn}"]
    assert kms_vault.verify().clean


def test_the_sweep_rewraps_a_held_local_record_into_kms(local_vault, key_arn, tmp_path):
    held, src = ingest(local_vault, tmp_path, 1)
    local_vault.open_dispute(held, case_ref="CASE-1", reason="customer denies the order")
    v = configure(local_vault, kms_client(key_arn))
    v.context.clock.now = SWEEP_AT
    report = v.run_retention()
    assert report.shredded == [] and report.rewrapped == 1
    assert report.keks_destroyed == [f"local:{CLIENT}:exp-2028-11:1"]
    assert row(v, held).kek_id == f"aws-kms:{key_arn}"
    assert read_back(v, tmp_path, held) == src.read_bytes()
    assert v.verify(deep=True).clean
    v.close()


def test_key_status_lists_the_kms_key(kms_vault, key_arn, tmp_path):
    ingest(kms_vault, tmp_path, 1)
    assert kms_vault.key_status(CLIENT) == [
        {"kek": f"aws-kms:{key_arn}", "bucket": None, "live_records": 1}
    ]


def test_destroying_a_kms_key_through_the_vault_is_refused(kms_vault, key_arn):
    with pytest.raises(ConfigError, match="does not delete KMS keys"):
        kms_vault.destroy_kek(f"aws-kms:{key_arn}")


def test_rotating_moves_old_local_records_into_kms(local_vault, key_arn, tmp_path):
    before, src = ingest(local_vault, tmp_path, 1)
    v = configure(local_vault, kms_client(key_arn))
    report = v.rotate_kek(CLIENT)
    assert report.records == 1
    assert row(v, before).kek_id == f"aws-kms:{key_arn}"
    assert read_back(v, tmp_path, before) == src.read_bytes()
    v.close()


# -- errors from KMS and from the configuration -------------------------------------------


@pytest.mark.parametrize(
    ("code", "error", "message"),
    [
        ("InvalidCiphertextException", DecryptionFailed, "does not open"),
        ("IncorrectKeyException", DecryptionFailed, "was not made under KMS key"),
        ("DisabledException", KeyUnavailable, "is disabled"),
        ("KMSInvalidStateException", KeyUnavailable, "current state"),
        ("NotFoundException", KeyUnavailable, "does not exist"),
        ("AccessDeniedException", KeyUnavailable, r"access to KMS key .* was denied"),
        ("UnrecognizedClientException", KeyUnavailable, "did not accept"),
        ("KMSInternalException", KeyUnavailable, "right now"),
        ("SomethingNew", KeyUnavailable, r"refused kms:Decrypt .*\(SomethingNew\)"),
    ],
)
def test_kms_errors_map_to_vault_errors(monkeypatch, code, error, message):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    arn = f"arn:aws:kms:{REGION}:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    provider = AwsKmsProvider(arn, client=make_kms_client(region=REGION))
    with Stubber(provider.client) as stub:
        stub.add_client_error("decrypt", service_error_code=code, service_message="secret?")
        with pytest.raises(error, match=message) as exc:
            provider.unwrap(WrappedKey(f"aws-kms:{arn}", b"\x01" * 64), CLIENT, {"record": "r1"})
    assert "secret?" not in str(exc.value)  # KMS's own message is not repeated


def test_unreachable_endpoint_is_unavailable(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    provider = AwsKmsProvider("alias/vault", region=REGION, endpoint_url="http://127.0.0.1:9")
    with pytest.raises(KeyUnavailable, match=r"http://127.0.0.1:9 could not be reached") as exc:
        provider.generate(CLIENT, "exp-2028-11", {"record": "r1"})
    assert "endpoint_url" in exc.value.hint


def test_missing_credentials_are_a_config_error(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    provider = AwsKmsProvider("alias/vault", region=REGION, endpoint_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="no AWS credentials"):
        provider.generate(CLIENT, "exp-2028-11", {"record": "r1"})


def test_client_key_settings_round_trip_through_vault_toml(tmp_path):
    arn = f"arn:aws:kms:{REGION}:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    (tmp_path / "vault.toml").write_text(
        "[keys]\n"
        'provider = "local"\n'
        "[keys.clients.telco-de]\n"
        'provider = "aws-kms"\n'
        f'key_id = "{arn}"\n'
        'endpoint_url = "http://127.0.0.1:4566"\n'
        '[keys.clients."telco.ch"]\n'
        'provider = "local"\n'
    )
    s = load_settings(tmp_path, env={})
    de = s.client_keys(CLIENT)
    assert (de.provider, de.key_id, de.resolved_region, de.endpoint_url) == (
        "aws-kms",
        arn,
        REGION,  # from the ARN
        "http://127.0.0.1:4566",
    )
    assert s.client_keys("telco.ch").provider == "local"
    assert s.client_keys("unlisted").provider == "local"
    (tmp_path / "vault.toml").write_text(s.to_toml())
    assert load_settings(tmp_path, env={}).key_clients == s.key_clients


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('provider = "vault-kms"', r"\[keys.clients.telco-de\]: unknown key provider 'vault-kms'"),
        ('provider = "aws-kms"', r"provider 'aws-kms' needs 'key_id'"),
        ('provider = "aws-kms"\nkey_id = ""', r"provider 'aws-kms' needs 'key_id'"),
        ('provider = "aws-kms"\nkey_id = "my key"', "not a KMS key id, key ARN or alias"),
        ('provider = "aws-kms"\nkeyid = "k"', r"unknown setting\(s\) 'keyid'"),
        ('provider = "aws-kms"\nkey_id = "alias/x"\nregion = "Frankfurt"', "not an AWS region"),
        (
            'provider = "aws-kms"\nkey_id = "arn:aws:kms:eu-west-1:1:key/k"\n'
            'region = "eu-central-1"',
            "differs from the region of the key ARN",
        ),
        ('provider = "aws-kms"\nkey_id = "alias/x"\nendpoint_url = "localhost"', "http:// or"),
        ("provider = 1", "provider must be a string"),
    ],
)
def test_bad_client_key_configuration(tmp_path, table, message):
    (tmp_path / "vault.toml").write_text(f"[keys.clients.telco-de]\n{table}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path, env={})


def test_bad_client_key_settings_built_in_code():
    with pytest.raises(ConfigError, match="unknown key provider 'kms'") as exc:
        ClientKeySettings(CLIENT, "kms", "alias/x")
    assert "'aws-kms'" in exc.value.hint
    with pytest.raises(ConfigError, match="needs 'key_id'") as exc:
        ClientKeySettings(CLIENT, "aws-kms")
    assert "arn:aws:kms" in exc.value.hint
    with pytest.raises(ConfigError, match="client name"):
        ClientKeySettings("telco:de", "aws-kms", "alias/x")


def test_kek_ids_of_all_clients(kms_vault, key_arn, tmp_path):
    ingest(kms_vault, tmp_path, 1, client=OTHER)
    assert kms_vault.context.keys.kek_ids() == sorted(
        [f"aws-kms:{key_arn}", f"local:{OTHER}:exp-2028-11:1"]
    )


def test_the_data_key_is_not_stored_in_the_clear(kms_vault, tmp_path):
    rid, _ = ingest(kms_vault, tmp_path, 1)
    with read_session(kms_vault.context.engine) as s:
        (rec,) = s.exec(select(Record).where(Record.id == rid))
    dek = kms_vault.context.keys.unwrap(
        WrappedKey(rec.kek_id, rec.wrapped_dek), CLIENT, {"record": rid}
    )
    assert dek not in rec.wrapped_dek
