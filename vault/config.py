"""Vault settings: ``vault.toml`` in the vault's home directory, overridden by environment.

The embedded default needs no server: SQLite (WAL) in ``HOME/vault.db``, objects under
``HOME/objects``, a local keyring in ``HOME/keyring.json`` protected by a master key.
An S3 endpoint and a PostgreSQL URL replace the embedded parts by configuration alone.

Environment variables (each overrides the file):

=================================  ==========================================
``EVIDENCE_VAULT_HOME``            the vault directory (``--vault`` on the CLI)
``EVIDENCE_VAULT_DATABASE_URL``    SQLAlchemy URL, e.g. ``postgresql+psycopg://u:pw@h/db``
``EVIDENCE_VAULT_STORAGE``         ``local`` or ``s3``
``EVIDENCE_VAULT_S3_ENDPOINT``     S3 endpoint URL (omit for AWS)
``EVIDENCE_VAULT_S3_BUCKET``       bucket name
``EVIDENCE_VAULT_S3_REGION``       region name
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``  S3 credentials (boto3's usual chain)
``EVIDENCE_VAULT_MASTER_KEY``      the keyring master key (else ``HOME/master.key``)
``EVIDENCE_VAULT_NAME``            the vault's name in log origins
=================================  ==========================================

The database password is never written into ``vault.toml``: it comes from
``EVIDENCE_VAULT_DATABASE_URL`` (the whole URL), or from the file ``[metadata]
password_file`` names (``init --database-url`` with a password writes it to
``HOME/database.password``, mode 0600; a file others may read is refused).

Key providers are chosen per client in the file only (``[keys.clients.NAME]``, see
``docs/operations.md``, "Keys in AWS KMS"): clients without an entry use the local
keyring. KMS credentials come from boto3's usual chain (environment, profile, role).

CPaaS recording webhooks (``[cpaas]``, ``[cpaas.clients.NAME]``: the per-client webhook
secret file, allowed recording hosts, metadata templates) are configured in the file only
(``docs/dialers.md``).

RFC 3161 Time-Stamping Authorities are configured in the file only (``[timestamping]`` and
one ``[[timestamping.tsa]]`` table each: name, url, roots; ``docs/operations.md``,
"Time-stamping checkpoints").
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from vault.errors import ConfigError
from vault.identifiers import KEY_NAME

CONFIG_FILE = "vault.toml"
#: where ``init`` puts a database password given on its command line (mode 0600)
PASSWORD_FILE = "database.password"
HOME_ENV = "EVIDENCE_VAULT_HOME"
#: the key providers a client can be configured with (``[keys.clients.NAME] provider``)
KEY_PROVIDERS = ("local", "aws-kms")
_CLIENT_KEY_FIELDS = ("provider", "key_id", "region", "endpoint_url")
# key id, key ARN, alias name or alias ARN: printable, no spaces (KMS allows up to 2048)
_KMS_KEY_ID = re.compile(r"[A-Za-z0-9:/_.+=,@-]{1,2048}")
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-\d+")


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    prefix: str = ""
    #: create the bucket with Object Lock on ``init`` when it does not exist
    object_lock: bool = True


@dataclass(frozen=True)
class ClientKeySettings:
    """The key provider of one client (``[keys.clients.NAME]``); checked when made.

    ``key_id``, ``region`` and ``endpoint_url`` may stay when a client goes back to
    ``local``: records it sealed in KMS are then still opened through that endpoint.
    """

    client: str
    provider: str = "local"
    #: KMS key ARN (recommended), key id, alias name or alias ARN
    key_id: str | None = None
    #: defaults to the region in the key ARN, else boto3's (AWS_DEFAULT_REGION, profile)
    region: str | None = None
    #: another KMS endpoint (LocalStack, a VPC endpoint); omit for AWS's own
    endpoint_url: str | None = None

    def __post_init__(self) -> None:
        where = f"[keys.clients.{_toml_key(self.client)}]"
        if not KEY_NAME.matches(self.client):  # it names the tenant in key ids
            raise ConfigError(
                f"{where}: a client name must be 1-128 characters of letters, digits, "
                "'.', '_', '/' or '-', starting with a letter or digit",
                hint="use the client's id as in `evidence-vault client list`",
            )
        if self.provider not in KEY_PROVIDERS:
            raise ConfigError(
                f"{where}: unknown key provider {self.provider!r}",
                hint="use 'local' (the keyring file) or 'aws-kms'",
            )
        for name in ("key_id", "region", "endpoint_url"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{where}: {name} must be a non-empty string")
        if self.provider == "aws-kms" and not self.key_id:
            raise ConfigError(
                f"{where}: provider 'aws-kms' needs 'key_id'",
                hint='add key_id = "arn:aws:kms:REGION:ACCOUNT:key/KEY-ID" (the key\'s ARN)',
            )
        if self.key_id is not None and not _KMS_KEY_ID.fullmatch(self.key_id):
            raise ConfigError(
                f"{where}: key_id is not a KMS key id, key ARN or alias",
                hint="copy the key's ARN from `aws kms describe-key`",
            )
        if self.region is not None and not _REGION.fullmatch(self.region):
            raise ConfigError(
                f"{where}: region {self.region!r} is not an AWS region name",
                hint='e.g. region = "eu-central-1"; omit it to use the region in the key ARN',
            )
        arn_region = kms_arn_region(self.key_id)
        if self.region and arn_region and self.region != arn_region:
            raise ConfigError(
                f"{where}: region {self.region!r} differs from the region of the key ARN "
                f"({arn_region!r})",
                hint="omit region: a key ARN names its region",
            )
        if self.endpoint_url is not None and not self.endpoint_url.startswith(
            ("http://", "https://")
        ):
            raise ConfigError(
                f"{where}: endpoint_url must be an http:// or https:// URL",
                hint="omit it to use AWS's own KMS endpoint",
            )

    @property
    def resolved_region(self) -> str | None:
        """The configured region, else the key ARN's, else None (boto3's default)."""
        return self.region or kms_arn_region(self.key_id)


def kms_arn_region(key_id: str | None) -> str | None:
    """The region of a KMS key or alias ARN (``arn:PARTITION:kms:REGION:…``); else None."""
    parts = key_id.split(":", 5) if key_id else []
    if len(parts) == 6 and parts[0] == "arn" and parts[2] == "kms" and parts[3]:
        return parts[3]
    return None


#: ``[[timestamping.tsa]]`` fields
_TSA_FIELDS = ("name", "url", "roots")
#: a TSA's name: it names its tokens (``timestamps/<name>.tsr`` in bundles)
_TSA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class TsaSettings:
    """One RFC 3161 Time-Stamping Authority (``[[timestamping.tsa]]``); checked when made."""

    name: str
    url: str
    #: PEM file of the root certificate(s) its tokens must chain to
    roots: Path

    def __post_init__(self) -> None:
        where = f"[[timestamping.tsa]] {self.name!r}"
        if not isinstance(self.name, str) or not _TSA_NAME.fullmatch(self.name):
            raise ConfigError(
                f"{where}: a TSA name is 1-64 letters, digits, '_' or '-'",
                hint='e.g. name = "dfn" (it names the tokens: timestamps/dfn.tsr)',
            )
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{where}: url must be the TSA's http:// or https:// address",
                hint='e.g. url = "https://zeitstempel.dfn.de"',
            )


# --- witnesses (C2SP tlog-witness) -------------------------------------------------------


@dataclass(frozen=True)
class WitnessSettings:
    """One witness (``[[witnessing.witnesses]]``): its submission URL and verifier key."""

    url: str
    #: the witness's verifier key, ``<name>+<key id>+<base64(0x04 ‖ Ed25519 key)>``
    key: str

    def __post_init__(self) -> None:
        if not isinstance(self.url, str) or not self.url.startswith(("http://", "https://")):
            raise ConfigError(
                "[[witnessing.witnesses]] url must be an http:// or https:// URL",
                hint="the witness's submission prefix; the vault POSTs to <url>/add-checkpoint",
            )
        from vault.errors import VaultError
        from vault.ledger.cosignature import parse_witness_key

        try:
            parse_witness_key(self.key)
        except VaultError as exc:
            raise ConfigError(
                f"[[witnessing.witnesses]] key: {exc.message}",
                hint="copy the witness's verifier key from its operator (type 0x04)",
            ) from None


@dataclass(frozen=True)
class WitnessingSettings:
    """``[witnessing]``: witnesses, how many must cosign, and how long to wait for one."""

    witnesses: tuple[WitnessSettings, ...] = ()
    #: cosignatures a checkpoint needs to count as witnessed (default: every witness)
    quorum: int | None = None
    #: seconds to wait for one witness's answer; a slow witness is retried later
    timeout: float = 5.0

    def __post_init__(self) -> None:
        names = [w.key.split("+", 1)[0] for w in self.witnesses]
        if len(set(names)) != len(names):
            raise ConfigError("[[witnessing.witnesses]]: a witness name is listed twice")
        if self.quorum is not None and not 1 <= self.quorum <= max(1, len(self.witnesses)):
            raise ConfigError(
                f"[witnessing] quorum {self.quorum} cannot be met by "
                f"{len(self.witnesses)} witness(es)",
                hint="set 1 <= quorum <= the number of [[witnessing.witnesses]]",
            )
        if not self.timeout > 0:
            raise ConfigError("[witnessing] timeout must be a positive number of seconds")

    @property
    def required(self) -> int:
        return len(self.witnesses) if self.quorum is None else self.quorum


def _witnessing(table: object) -> WitnessingSettings:
    if not isinstance(table, dict):
        raise ConfigError("[witnessing] must be a table", hint="see docs/operations.md, Witnesses")
    unknown = sorted(set(table) - {"witnesses", "quorum", "timeout"})
    if unknown:
        raise ConfigError(
            f"[witnessing]: unknown setting(s) {', '.join(map(repr, unknown))}",
            hint="the settings are quorum, timeout and [[witnessing.witnesses]] url/key",
        )
    entries = table.get("witnesses", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError("[[witnessing.witnesses]] must be an array of tables with url and key")
    witnesses = []
    for entry in entries:
        if set(entry) != {"url", "key"}:
            raise ConfigError(
                "[[witnessing.witnesses]] needs exactly url and key",
                hint='e.g. url = "https://witness.example/w1" and key = "witness.example/w1+…"',
            )
        witnesses.append(WitnessSettings(str(entry["url"]).rstrip("/"), str(entry["key"])))
    quorum = table.get("quorum")
    timeout = table.get("timeout", 5.0)
    if (quorum is not None and (isinstance(quorum, bool) or not isinstance(quorum, int))) or (
        isinstance(timeout, bool) or not isinstance(timeout, int | float)
    ):
        raise ConfigError("[witnessing] quorum is a whole number and timeout a number")
    return WitnessingSettings(tuple(witnesses), quorum, float(timeout))


def witnessing_toml(w: WitnessingSettings) -> list[str]:
    """The ``[witnessing]`` part of vault.toml (nothing when no witness is configured)."""
    if not w.witnesses:
        return []
    lines = ["[witnessing]"]
    if w.quorum is not None:
        lines.append(f"quorum = {w.quorum}  # cosignatures a checkpoint needs")
    lines += [f"timeout = {w.timeout:g}  # seconds per witness answer", ""]
    for ws in w.witnesses:
        lines += ["[[witnessing.witnesses]]", f"url = {_toml_str(ws.url)}"]
        lines += [f"key = {_toml_str(ws.key)}", ""]
    return lines
#: ``[cpaas.clients.NAME]`` fields
_CPAAS_CLIENT_FIELDS = ("secret_file", "fetch_basic_auth", "templates")


@dataclass(frozen=True)
class CpaasClient:
    """One client's CPaaS webhook: its secret (read from a 0600 file when used) and the
    evidence template of each campaign (``docs/dialers.md``)."""

    client: str
    secret_file: Path
    #: fetch recordings with HTTP basic auth: the callback's AccountSid and the secret
    fetch_basic_auth: bool = False
    templates: Mapping[str, Path] = field(default_factory=dict, hash=False)

    def secret(self) -> bytes:
        """The webhook secret (the CPaaS account's auth token); ConfigError if unusable."""
        path = self.secret_file
        if not path.exists():
            raise ConfigError(
                f"the CPaaS webhook secret file of client {self.client!r} is missing",
                hint=f"write the account's auth token to {path} (mode 0600)",
            )
        if path.stat().st_mode & 0o077:
            raise ConfigError(
                f"{path} may be read by others", hint=f"chmod 600 {path}: it holds a secret"
            )
        secret = path.read_bytes().strip()
        if not secret:
            raise ConfigError(f"{path} is empty", hint="write the account's auth token to it")
        return secret


@dataclass(frozen=True)
class CpaasSettings:
    """``[cpaas]``: recording-ready webhooks in the style of Twilio (docs/dialers.md)."""

    #: the only origins (scheme://host[:port]) recordings are fetched from; a host may
    #: start with ``*.`` for its subdomains. Empty: nothing is fetched (SSRF guard)
    allowed_origins: tuple[str, ...] = ()
    #: the base URL the CPaaS calls (signatures cover the URL as the CPaaS sees it);
    #: empty: the URL of the request as it reached the vault
    public_url: str = ""
    #: a recording still not fetchable after this many hours is given up (state failed)
    give_up_hours: float = 24.0
    #: a worker's claim on a job lasts this long: longer than the slowest fetch and ingest.
    #: A worker killed mid-fetch leaves the job to another one after it
    lease_seconds: float = 600.0
    clients: Mapping[str, CpaasClient] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Settings:
    home: Path
    name: str = "evidence-vault"
    #: with its password at run time (never written to vault.toml, never in a repr)
    database_url: str = field(default="", repr=False)
    #: a 0600 file holding the database password, for a URL without one
    database_password_file: Path | None = None
    storage: str = "local"
    objects_dir: Path | None = None
    s3: S3Settings | None = None
    key_provider: str = "local"
    #: per-client key providers (``[keys.clients.NAME]``); clients not listed use ``local``
    key_clients: Mapping[str, ClientKeySettings] = field(
        default_factory=dict, hash=False, compare=True
    )
    keyring_file: Path | None = None
    master_key_file: Path | None = None
    master_key: str | None = field(default=None, repr=False)
    #: sign a checkpoint after this many new entries ...
    checkpoint_every: int = 100
    #: ... or on the first append this many seconds after the last checkpoint
    checkpoint_seconds: int = 60
    #: ``[http]``: an upload whose body sends no byte for this long is answered 408
    receive_timeout: float = 30.0
    #: ... at most this many uploads at once per ``serve`` worker; more are a 503 ``busy``
    max_uploads: int = 64
    #: ... a connection is closed after this many requests or seconds (0: never), so that
    #: clients spread over the workers again after one restarts (within a minute; one new
    #: TCP connection per client and minute costs nothing measurable)
    connection_max_requests: int = 1000
    connection_max_seconds: float = 60.0
    #: escalation desk (``[web]``): a session ends after this many idle minutes ...
    web_idle_minutes: int = 30
    #: ... and this many hours after sign-in, whatever happens
    web_absolute_hours: int = 12
    #: session cookie ``Secure``: "auto" (when the request came over https) or "always"
    web_secure_cookie: str = "auto"
    #: times on the desk are shown in this zone unless the browser says otherwise
    web_timezone: str = "Europe/Berlin"
    #: reverse proxies (addresses or networks) whose X-Forwarded-For / -Proto are believed:
    #: the client address (sign-in throttling) and scheme (Secure cookie) come from them
    web_trusted_proxies: tuple[str, ...] = ()
    #: ``[report]``: sign report.pdf (PAdES B-T) with this PEM key and certificate (and
    #: chain), the signature time-stamped by the RFC 3161 TSA at ``report_tsa_url``;
    #: unset: the PDF is not signed
    report_sign_key: Path | None = None
    report_sign_cert: Path | None = None
    report_sign_chain: tuple[Path, ...] = ()
    report_tsa_url: str | None = None
    #: ``[timestamping]``: the TSAs every checkpoint is time-stamped by (none: off) ...
    tsas: tuple[TsaSettings, ...] = ()
    #: ... ``serve`` stamps the checkpoints still lacking a token every this many seconds
    timestamp_interval: float = 30.0
    #: ... and gives a TSA this many seconds to answer
    timestamp_timeout: float = 10.0
    #: ``[witnessing]``: the C2SP tlog-witnesses that cosign each checkpoint
    witnessing: WitnessingSettings = field(default_factory=lambda: WitnessingSettings())
    #: ``[cpaas]``: recording webhooks (none: the endpoint answers 404 for every client)
    cpaas: CpaasSettings = field(default_factory=CpaasSettings, hash=False)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'vault.db'}"

    @property
    def resolved_objects_dir(self) -> Path:
        return self.objects_dir or self.home / "objects"

    @property
    def resolved_keyring_file(self) -> Path:
        return self.keyring_file or self.home / "keyring.json"

    @property
    def resolved_master_key_file(self) -> Path:
        return self.master_key_file or self.home / "master.key"

    def client_keys(self, client: str) -> ClientKeySettings:
        """The key provider settings of ``client`` (``local`` when it has no entry)."""
        return self.key_clients.get(client) or ClientKeySettings(client)

    def to_toml(self) -> str:
        """The file ``init`` writes; secrets are never written into it."""
        lines = [
            "# evidence-vault configuration; environment variables override it (see docs)",
            f'name = "{self.name}"',
            "",
            "[metadata]",
            f"url = {_toml_str(without_password(self.database_url))}"
            "  # empty: SQLite in this directory; never a password",
        ]
        if self.database_password_file is not None:
            where = self.database_password_file
            shown = where.name if where.parent == self.home else str(where)
            lines.append(f"password_file = {_toml_str(shown)}  # mode 0600")
        lines += [
            "",
            "[storage]",
            f'backend = "{self.storage}"',
        ]
        if self.s3:
            lines += [
                "",
                "[storage.s3]",
                f'bucket = "{self.s3.bucket}"',
                f'endpoint_url = "{self.s3.endpoint_url or ""}"',
                f'region = "{self.s3.region or ""}"',
                f'prefix = "{self.s3.prefix}"',
                f"object_lock = {'true' if self.s3.object_lock else 'false'}",
            ]
        lines += [
            "",
            "[ledger]",
            f"checkpoint_every = {self.checkpoint_every}  # entries between signed checkpoints",
            f"checkpoint_seconds = {self.checkpoint_seconds}  # or seconds (serve: on a timer)",
            "",
            "[http]",
            f"receive_timeout = {self.receive_timeout:g}  # seconds without a byte of an upload",
            f"max_uploads = {self.max_uploads}  # at once, per serve worker",
            f"connection_max_requests = {self.connection_max_requests}  # then close (0: never)",
            f"connection_max_seconds = {self.connection_max_seconds:g}  # then close (0: never)",
            "",
            "[keys]",
            f'provider = "{self.key_provider}"',
            "",
        ]
        lines += self._timestamping_toml()
        for name, ck in sorted(self.key_clients.items()):
            lines += [f"[keys.clients.{_toml_key(name)}]", f"provider = {_toml_str(ck.provider)}"]
            for item in ("key_id", "region", "endpoint_url"):
                value = getattr(ck, item)
                if value is not None:
                    lines.append(f"{item} = {_toml_str(value)}")
            lines.append("")
        lines += witnessing_toml(self.witnessing)
        return "\n".join(lines)

    def _timestamping_toml(self) -> list[str]:
        if not self.tsas:
            return []
        lines = [
            "[timestamping]",
            f"interval = {self.timestamp_interval:g}  # seconds between catch-up runs (serve)",
            f"timeout = {self.timestamp_timeout:g}  # seconds a TSA has to answer",
            "",
        ]
        for tsa in self.tsas:
            roots = tsa.roots.name if tsa.roots.parent == self.home else str(tsa.roots)
            lines += [
                "[[timestamping.tsa]]",
                f"name = {_toml_str(tsa.name)}",
                f"url = {_toml_str(tsa.url)}",
                f"roots = {_toml_str(roots)}",
                "",
            ]
        return lines


def resolve_home(explicit: str | os.PathLike | None = None) -> Path:
    """The vault directory: ``--vault``, else ``$EVIDENCE_VAULT_HOME``, else ``.evidence-vault``."""
    raw = explicit or os.environ.get(HOME_ENV) or ".evidence-vault"
    return Path(raw).expanduser().resolve()


def load_settings(home: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read ``home/vault.toml`` (if present) and apply environment overrides."""
    env = os.environ if env is None else env
    data: dict = {}
    path = home / CONFIG_FILE
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{path} is not valid TOML: {exc}", hint="fix the file or run init again"
            ) from exc
    settings = _from_file(home, data)
    return with_database_password(apply_env(settings, env))


def without_password(url: str) -> str:
    """``url`` with any password removed (for vault.toml)."""
    parsed = _parse_url(url)
    if parsed is None or parsed.password is None:
        return url
    return parsed._replace(password=None).render_as_string(hide_password=False)  # set() keeps it


def database_password(url: str) -> str | None:
    parsed = _parse_url(url)
    return None if parsed is None or parsed.password is None else str(parsed.password)


def shown_url(url: str) -> str:
    """``url`` fit to print: the password as ``***``."""
    parsed = _parse_url(url)
    return url if parsed is None else parsed.render_as_string(hide_password=True)


def with_database_password(s: Settings) -> Settings:
    """Put the password from ``database_password_file`` into a URL that has none."""
    if s.database_password_file is None or database_password(s.database_url) is not None:
        return s
    path = s.database_password_file
    if not path.exists():
        return s  # e.g. trust or peer authentication: no password at all
    if path.stat().st_mode & 0o077:
        raise ConfigError(
            f"{path} may be read by others",
            hint=f"chmod 600 {path}: it holds the database password",
        )
    password = path.read_text(encoding="utf-8").rstrip("\r\n")
    parsed = _parse_url(s.database_url)
    if parsed is None:
        return s
    url = parsed.set(password=password).render_as_string(hide_password=False)
    return replace(s, database_url=url)


def _parse_url(url: str):
    if not url:
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError:
        return None


def _from_file(home: Path, data: dict) -> Settings:
    storage = data.get("storage", {})
    s3_table = storage.get("s3")
    s3 = None
    if s3_table:
        s3 = S3Settings(
            bucket=_required(s3_table, "bucket", "storage.s3"),
            endpoint_url=s3_table.get("endpoint_url") or None,
            region=s3_table.get("region") or None,
            prefix=s3_table.get("prefix", ""),
            object_lock=bool(s3_table.get("object_lock", True)),
        )
    keys = data.get("keys", {})
    if not isinstance(keys, dict):
        raise ConfigError("[keys] must be a table", hint="see docs/operations.md, Keys")
    return Settings(
        home=home,
        name=data.get("name", "evidence-vault"),
        database_url=data.get("metadata", {}).get("url", ""),
        database_password_file=_path(home, data.get("metadata", {}).get("password_file")),
        storage=storage.get("backend", "local"),
        objects_dir=_path(home, storage.get("path")),
        s3=s3,
        key_provider=keys.get("provider", "local"),
        key_clients=_key_clients(keys.get("clients", {})),
        keyring_file=_path(home, keys.get("keyring")),
        master_key_file=_path(home, keys.get("master_key_file")),
        checkpoint_every=int(data.get("ledger", {}).get("checkpoint_every", 100)),
        checkpoint_seconds=int(data.get("ledger", {}).get("checkpoint_seconds", 60)),
        **_http_settings(data.get("http", {})),
        web_idle_minutes=int(data.get("web", {}).get("idle_minutes", 30)),
        web_absolute_hours=int(data.get("web", {}).get("absolute_hours", 12)),
        web_secure_cookie=str(data.get("web", {}).get("secure_cookie", "auto")),
        web_timezone=str(data.get("web", {}).get("timezone", "Europe/Berlin")),
        web_trusted_proxies=_trusted_proxies(data.get("web", {}).get("trusted_proxies", [])),
        **_report_settings(home, data.get("report", {})),
        **_timestamping(home, data.get("timestamping", {})),
        witnessing=_witnessing(data.get("witnessing", {})),
        cpaas=_cpaas(home, data.get("cpaas", {})),
    )


def _trusted_proxies(value: object) -> tuple[str, ...]:
    """``[web] trusted_proxies``: IP addresses or networks, each checked."""
    import ipaddress

    if not isinstance(value, list):
        raise ConfigError(
            "[web] trusted_proxies must be a list",
            hint='e.g. trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]',
        )
    out = []
    for item in value:
        try:
            out.append(str(ipaddress.ip_network(str(item), strict=False)))
        except ValueError:
            raise ConfigError(
                f"[web] trusted_proxies: {str(item)[:60]!r} is not an IP address or network",
                hint="list the addresses (or CIDR networks) of your reverse proxies; "
                "a proxy not listed is not believed",
            ) from None
    return tuple(out)


def _cpaas(home: Path, table: object) -> CpaasSettings:
    """``[cpaas]`` and its ``[cpaas.clients.NAME]`` tables, checked."""
    if not isinstance(table, dict):
        raise ConfigError("[cpaas] must be a table", hint="see docs/dialers.md")
    known = {"allowed_origins", "public_url", "give_up_hours", "lease_seconds", "clients"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"[cpaas]: unknown setting(s) {', '.join(map(repr, unknown))}",
            hint=f"the settings are {', '.join(sorted(known))}",
        )
    origins = table.get("allowed_origins", [])
    if not isinstance(origins, list) or not all(_ORIGIN.fullmatch(str(o)) for o in origins):
        raise ConfigError(
            "[cpaas] allowed_origins must be a list of origins",
            hint='e.g. allowed_origins = ["https://api.twilio.com"] (scheme://host[:port])',
        )
    hours = table.get("give_up_hours", 24)
    # the sealed documents of waiting jobs use a KEK bucket 40 days ahead (key sweep)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= 720:
        raise ConfigError(
            "[cpaas] give_up_hours must be a number of hours above 0, at most 720 (30 days)"
        )
    lease = table.get("lease_seconds", 600)
    if isinstance(lease, bool) or not isinstance(lease, int | float) or lease <= 0:
        raise ConfigError("[cpaas] lease_seconds must be a positive number of seconds")
    clients = table.get("clients", {})
    if not isinstance(clients, dict):
        raise ConfigError("[cpaas.clients] must be a table of clients")
    return CpaasSettings(
        allowed_origins=tuple(str(o).lower() for o in origins),
        public_url=str(table.get("public_url", "")).rstrip("/"),
        give_up_hours=float(hours),
        lease_seconds=float(lease),
        clients={name: _cpaas_client(home, name, entry) for name, entry in clients.items()},
    )


#: ``scheme://host[:port]``, the host possibly ``*.`` + a domain
_ORIGIN = re.compile(r"https?://(\*\.)?[A-Za-z0-9.-]+(:\d{1,5})?")


def _cpaas_client(home: Path, name: str, entry: object) -> CpaasClient:
    where = f"[cpaas.clients.{_toml_key(name)}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be a table", hint='e.g. secret_file = "cpaas.secret"')
    unknown = sorted(set(entry) - set(_CPAAS_CLIENT_FIELDS))
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(map(repr, unknown))}",
            hint=f"the settings are {', '.join(_CPAAS_CLIENT_FIELDS)}",
        )
    secret = _path(home, entry.get("secret_file"))
    if secret is None:
        raise ConfigError(
            f"{where} needs secret_file", hint="a 0600 file with the account's auth token"
        )
    templates = entry.get("templates", {})
    if not isinstance(templates, dict) or not all(isinstance(v, str) for v in templates.values()):
        raise ConfigError(
            f"{where} templates must map campaigns to JSON files",
            hint='e.g. templates = { "fibre-upsell" = "templates/fibre.json" }',
        )
    return CpaasClient(
        client=name,
        secret_file=secret,
        fetch_basic_auth=bool(entry.get("fetch_basic_auth", False)),
        templates={c: _path(home, p) or home for c, p in templates.items()},
    )


def _report_settings(home: Path, table: object) -> dict:
    """``[report]``: the PDF signature's key, certificate, chain and TSA, all or nothing."""
    if not isinstance(table, dict):
        raise ConfigError("[report] must be a table", hint="see docs/operations.md")
    key, cert = _path(home, table.get("sign_key")), _path(home, table.get("sign_cert"))
    tsa = table.get("tsa_url") or None
    if (key is None) != (cert is None) or (tsa is not None and key is None):
        raise ConfigError(
            "[report] needs sign_key and sign_cert together (and tsa_url only with them)",
            hint="see docs/operations.md, Dispute reports",
        )
    chain = table.get("sign_chain", [])
    if not isinstance(chain, list):
        raise ConfigError("[report] sign_chain must be a list of PEM files")
    return {
        "report_sign_key": key,
        "report_sign_cert": cert,
        "report_sign_chain": tuple(p for p in (_path(home, c) for c in chain) if p),
        "report_tsa_url": str(tsa) if tsa else None,
    }


def _timestamping(home: Path, table: object) -> dict:
    """``[timestamping]`` and its ``[[timestamping.tsa]]`` entries, checked."""
    if not isinstance(table, dict):
        raise ConfigError("[timestamping] must be a table", hint="see docs/operations.md")
    entries = table.get("tsa", [])
    if not isinstance(entries, list):
        raise ConfigError(
            "timestamping.tsa must be an array of tables",
            hint="write each TSA as its own [[timestamping.tsa]] table",
        )
    tsas = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise ConfigError("each [[timestamping.tsa]] must be a table")
        unknown = sorted(set(entry) - set(_TSA_FIELDS))
        missing = [f for f in _TSA_FIELDS if not isinstance(entry.get(f), str) or not entry[f]]
        if unknown or missing:
            raise ConfigError(
                f"[[timestamping.tsa]] {entry.get('name')!r}: "
                + "; ".join(
                    [f"unknown setting {u!r}" for u in unknown]
                    + [f"needs {m} (a string)" for m in missing]
                ),
                hint="each TSA has name, url and roots (a PEM file of its root certificates)",
            )
        tsas.append(TsaSettings(entry["name"], entry["url"], _path(home, entry["roots"]) or home))
    names = [t.name for t in tsas]
    if len(set(names)) != len(names):
        raise ConfigError("two [[timestamping.tsa]] have the same name", hint="rename one")
    out: dict = {"tsas": tuple(tsas)}
    for name, key in (("interval", "timestamp_interval"), ("timeout", "timestamp_timeout")):
        if name in table:
            value = table[name]
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"[timestamping] {name} must be a positive number of seconds")
            out[key] = float(value)
    return out


#: ``[http]`` setting -> (environment variable, type)
_HTTP_SETTINGS = {
    "receive_timeout": ("EVIDENCE_VAULT_RECEIVE_TIMEOUT", float),
    "max_uploads": ("EVIDENCE_VAULT_MAX_UPLOADS", int),
    "connection_max_requests": ("EVIDENCE_VAULT_CONNECTION_MAX_REQUESTS", int),
    "connection_max_seconds": ("EVIDENCE_VAULT_CONNECTION_MAX_SECONDS", float),
}


def _http_settings(table: object, where: str = "[http]") -> dict:
    """The ``[http]`` settings given (by name, or by environment variable), checked."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    out = {}
    for name, (_env, kind) in _HTTP_SETTINGS.items():
        if name not in table:
            continue
        raw = table[name]
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            value = -1
        positive = name in ("max_uploads", "receive_timeout")
        if isinstance(raw, bool) or value < 0 or (positive and value <= 0):
            raise ConfigError(
                f"{where} {name} must be a {'positive ' if positive else ''}"
                f"{'whole ' if kind is int else ''}number",
                hint=f"see docs/operations.md, The HTTP service ({_env})",
            )
        out[name] = value
    return out


def apply_env(s: Settings, env: Mapping[str, str]) -> Settings:
    s = replace(
        s,
        name=env.get("EVIDENCE_VAULT_NAME", s.name),
        database_url=env.get("EVIDENCE_VAULT_DATABASE_URL", s.database_url),
        storage=env.get("EVIDENCE_VAULT_STORAGE", s.storage),
        master_key=env.get("EVIDENCE_VAULT_MASTER_KEY") or None,
        **_http_settings(
            {name: env[var] for name, (var, _t) in _HTTP_SETTINGS.items() if var in env},
            "environment:",
        ),
    )
    bucket = env.get("EVIDENCE_VAULT_S3_BUCKET") or (s.s3.bucket if s.s3 else None)
    if s.storage == "s3":
        if not bucket:
            raise ConfigError(
                "storage backend is s3 but no bucket is configured",
                hint="set [storage.s3] bucket in vault.toml or EVIDENCE_VAULT_S3_BUCKET",
            )
        base = s.s3 or S3Settings(bucket=bucket)
        s = replace(
            s,
            s3=replace(
                base,
                bucket=bucket,
                endpoint_url=env.get("EVIDENCE_VAULT_S3_ENDPOINT", base.endpoint_url),
                region=env.get("EVIDENCE_VAULT_S3_REGION", base.region),
                access_key_id=env.get("AWS_ACCESS_KEY_ID", base.access_key_id),
                secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", base.secret_access_key),
            ),
        )
    elif s.storage != "local":
        raise ConfigError(f"unknown storage backend {s.storage!r}", hint="use 'local' or 's3'")
    if s.key_provider != "local":
        raise ConfigError(
            f"unknown key provider {s.key_provider!r}",
            hint="[keys] provider is always 'local' (the keyring also holds index and "
            "signing keys); choose 'aws-kms' per client in [keys.clients.NAME]",
        )
    return s


def _key_clients(table: object) -> dict[str, ClientKeySettings]:
    """``[keys.clients.NAME]`` tables → settings per client (each checked on creation)."""
    if not isinstance(table, dict):
        raise ConfigError(
            "[keys.clients] must be a table of clients",
            hint='e.g. [keys.clients.telco-de] provider = "aws-kms" key_id = "arn:…"',
        )
    out = {}
    for name, entry in table.items():
        where = f"[keys.clients.{_toml_key(name)}]"
        if not isinstance(entry, dict):
            raise ConfigError(
                f"{where} must be a table", hint='e.g. provider = "aws-kms" and key_id = "…"'
            )
        unknown = sorted(set(entry) - set(_CLIENT_KEY_FIELDS))
        if unknown:
            raise ConfigError(
                f"{where}: unknown setting(s) {', '.join(map(repr, unknown))}",
                hint=f"the settings are {', '.join(_CLIENT_KEY_FIELDS)}",
            )
        for item, value in entry.items():
            if not isinstance(value, str):
                raise ConfigError(f"{where}: {item} must be a string")
        out[name] = ClientKeySettings(
            client=name,
            provider=entry.get("provider", "local"),
            key_id=entry.get("key_id") or None,
            region=entry.get("region") or None,
            endpoint_url=entry.get("endpoint_url") or None,
        )
    return out


def _toml_str(value: str) -> str:
    # JSON string escapes are valid in TOML basic strings
    return json.dumps(value, ensure_ascii=False)


def _toml_key(name: object) -> str:
    text = str(name)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else _toml_str(text)


def _required(table: dict, key: str, where: str) -> str:
    value = table.get(key)
    if not value:
        raise ConfigError(f"[{where}] needs '{key}'", hint=f'add {key} = "..." to vault.toml')
    return str(value)


def _path(home: Path, raw: str | None) -> Path | None:
    if not raw:
        return None
    p = Path(raw).expanduser()
    return p if p.is_absolute() else home / p
