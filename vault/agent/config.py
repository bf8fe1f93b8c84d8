"""The agent's settings: ``agent.toml`` in its directory, then the environment, then
command-line options. The token is never written to the file by the agent; give it as
``token_file`` (mode 0600) or in ``EVIDENCE_VAULT_TOKEN``."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from vault.errors import ConfigError

CONFIG_FILE = "agent.toml"
ENV_TOKEN = "EVIDENCE_VAULT_TOKEN"
ENV_LOG_KEY = "EVIDENCE_VAULT_LOG_KEY"


@dataclass(frozen=True)
class AgentConfig:
    home: Path
    url: str = ""
    token: str | None = field(default=None, repr=False)
    #: the dialer drops clip + sidecar pairs here
    watch: Path | None = None
    #: refused clips, each with ``<name>.reason.txt``
    quarantine: Path | None = None
    #: verified clips go here; "delete" removes them instead
    done: Path | None = None
    after_done: str = "move"  # "move" or "delete"
    #: a file is complete when closed and unchanged (size, mtime) this long
    settle_seconds: float = 2.0
    #: poll the folder (network shares) instead of inotify
    poll: bool = False
    poll_interval: float = 1.0
    concurrency: int = 4
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    #: how often to ask for the inclusion proof while no checkpoint covers an entry
    proof_interval: float = 15.0
    timeout: float = 60.0
    #: the pinned log verifier key(s) (``evidence-vault log key``); several across rotation
    log_keys: tuple[str, ...] = ()
    #: Prometheus text on http://127.0.0.1:PORT/metrics; 0 = off
    metrics_port: int = 0
    #: this dialer host's source-signing key (PEM, 0600; `evidence-vault dialer keygen`)
    signing_key: Path | None = None
    #: `agent run` runs at least this nice (0-19): the dialer's real-time work comes first
    nice: int = 10

    @property
    def spool_path(self) -> Path:
        return self.home / "spool.db"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def receipts_path(self) -> Path:
        return self.home / "receipts.jsonl"

    @property
    def lock_path(self) -> Path:
        return self.home / "agent.lock"

    def require_service(self) -> None:
        missing = [n for n, v in (("url", self.url), ("token", self.token)) if not v]
        if missing:
            raise ConfigError(
                f"the agent has no {' and no '.join(missing)}",
                hint=f"set url in {CONFIG_FILE} and the token in token_file or ${ENV_TOKEN}",
            )
        if not self.log_keys:
            raise ConfigError(
                "the agent has no pinned log key: receipts could not be verified",
                hint=f"set log_keys in {CONFIG_FILE} (`evidence-vault log key`) or ${ENV_LOG_KEY}",
            )


_NAMES = {f.name for f in fields(AgentConfig)}
_PATHS = ("watch", "quarantine", "done", "signing_key")


def load_config(home: str | os.PathLike, env: dict | None = None, **overrides) -> AgentConfig:
    """Read ``home/agent.toml`` (optional), the environment, then ``overrides`` (None: unset)."""
    environ: Mapping[str, str] = os.environ if env is None else env
    home = Path(home).absolute()
    data: dict = {}
    path = home / CONFIG_FILE
    if path.exists():
        try:
            data = tomllib.loads(path.read_text("utf-8")).get("agent", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}", hint="fix the file") from None
    unknown = sorted(set(data) - _NAMES - {"token_file"})
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting(s) {', '.join(unknown)}", hint="see docs/agent.md"
        )
    token_file = data.pop("token_file", None)
    if token_file:
        data["token"] = (home / token_file).read_text().strip()
    if environ.get(ENV_TOKEN):
        data["token"] = environ[ENV_TOKEN]
    if environ.get(ENV_LOG_KEY) and not data.get("log_keys"):
        data["log_keys"] = [environ[ENV_LOG_KEY]]
    data.update({k: v for k, v in overrides.items() if v is not None})
    for name in _PATHS:
        if data.get(name):
            data[name] = home / Path(data[name]).expanduser()
    if isinstance(data.get("log_keys"), str):
        data["log_keys"] = [data["log_keys"]]
    data["log_keys"] = tuple(data.get("log_keys") or ())
    cfg = AgentConfig(home=home, **data)
    if cfg.after_done not in ("move", "delete"):
        raise ConfigError("after_done is 'move' or 'delete'", hint=f"fix {CONFIG_FILE}")
    if not 0 <= cfg.nice <= 19:
        raise ConfigError(f"nice is {cfg.nice}, not 0 to 19", hint=f"fix {CONFIG_FILE}")
    return replace(
        cfg,
        watch=cfg.watch or home / "inbox",
        quarantine=cfg.quarantine or home / "quarantine",
        done=cfg.done or home / "done",
    )
