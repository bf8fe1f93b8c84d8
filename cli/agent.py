"""``evidence-vault agent run|status`` and ``evidence-vault upload``: the dialer side.

Attached to the main command in :mod:`cli.main`; a refusal raises a
:class:`vault.errors.VaultError`, which the main command turns into its exit code
(3 invalid clip or metadata, 5 conflict, 6 configuration, 7 failure or receipt mismatch).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

import click

from cli._errors import show_error
from vault.agent.config import ENV_LOG_KEY, ENV_TOKEN, load_config
from vault.agent.intake import check_pair
from vault.agent.receipts import check_inclusion, check_opening
from vault.agent.retry import Backoff
from vault.agent.signing import load_signer, source_header
from vault.agent.uplink import Uplink, UploadFailed
from vault.errors import ConfigError, StorageError, VaultError
from vault.sealing import new_salt

DEFAULT_HOME = ".evidence-agent"


def _as_json(ctx: click.Context, flag: bool) -> bool:
    return flag or bool((ctx.find_root().obj or {}).get("json"))


@click.group()
@click.option(
    "--dir",
    "home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="EVIDENCE_AGENT_HOME",
    default=DEFAULT_HOME,
    show_default=True,
    help="The agent's directory (agent.toml, spool.db, receipts.jsonl) [env EVIDENCE_AGENT_HOME].",
)
@click.pass_context
def agent(ctx: click.Context, home: Path) -> None:
    """The dialer agent: watch folder -> checks -> durable spool -> vault -> checked receipt."""
    ctx.ensure_object(dict)
    ctx.obj["agent_home"] = home


@agent.command("run")
@click.option("--url", help="The vault's base URL (agent.toml: url).")
@click.option("--watch", type=click.Path(file_okay=False), help="The watch folder.")
@click.option("--poll", is_flag=True, default=None, help="Poll the folder (network shares).")
@click.option("--settle", "settle_seconds", type=float, help="Seconds a file must stand still.")
@click.option("--concurrency", type=int, help="Parallel uploads.")
@click.option("--backoff-cap", type=float, help="Longest wait between retries, seconds.")
@click.option("--proof-interval", type=float, help="Seconds between asks for the proof.")
@click.option("--log-key", "log_keys", multiple=True, help="Pinned log verifier key.")
@click.option("--metrics-port", type=int, help="Serve /metrics on 127.0.0.1:PORT.")
@click.option("--nice", type=click.IntRange(0, 19), help="Run at least this nice (default 10).")
@click.pass_context
def agent_run(ctx: click.Context, log_keys: tuple[str, ...], **options) -> None:
    """Run the agent until SIGTERM or Ctrl-C; resumes where a previous run stopped."""
    from vault.agent.pipeline import Agent, lower_priority

    cfg = load_config(ctx.obj["agent_home"], log_keys=log_keys or None, **options)
    lower_priority(cfg.nice)  # before any thread starts: they inherit it
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    # httpx logs every request at INFO; the agent logs each job's outcome itself
    logging.getLogger("httpx").setLevel(logging.WARNING)
    running = Agent(cfg).start()
    stop = running.stopping
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"agent running: watching {cfg.watch}", err=True)
    while not stop.wait(1.0):
        pass
    running.stop()
    click.echo("agent stopped", err=True)


@agent.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.pass_context
def agent_status_cmd(ctx: click.Context, as_json: bool) -> None:
    """Queued, in flight, waiting for proof, done, quarantined, alert; oldest; last error."""
    from vault.agent.status import agent_status, status_text

    cfg = load_config(ctx.obj["agent_home"])
    if not cfg.spool_path.exists():
        raise ConfigError(
            f"no agent spool in {cfg.home}", hint="check --dir, or start `evidence-vault agent run`"
        )
    found = agent_status(cfg)
    click.echo(json.dumps(found, indent=2) if _as_json(ctx, as_json) else status_text(found))


@agent.command("retry")
@click.argument("job_ids", nargs=-1, type=int)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.pass_context
def agent_retry(ctx: click.Context, job_ids: tuple[int, ...], as_json: bool) -> None:
    """Retry jobs after a look: every job in alert, or the JOB_IDS given.

    A job in alert is queued again (every check runs again); a queued job or one waiting
    for its proof is due now; a quarantined job is forgotten, so that its corrected pair
    can be dropped into the watch folder again. Safe while the agent runs.
    """
    from vault.agent.spool import Spool

    cfg = load_config(ctx.obj["agent_home"])
    if not cfg.spool_path.exists():
        raise ConfigError(f"no agent spool in {cfg.home}", hint="check --dir")
    spool = Spool(cfg.spool_path)
    try:
        ids = list(job_ids) or [j.id for j in spool.jobs("alert")]
        done: dict[int, str] = {}
        for job_id in ids:
            try:
                done[job_id] = spool.requeue(job_id)
            except KeyError:
                done[job_id] = "refused: no such job"
            except ValueError as exc:
                done[job_id] = f"refused: {exc}"
    finally:
        spool.close()
    if _as_json(ctx, as_json):
        click.echo(json.dumps({str(k): v for k, v in done.items()}, indent=2))
    else:
        click.echo("\n".join(f"job {k}: {v}" for k, v in done.items()) or "no job in alert")
    if any(v.startswith("refused") for v in done.values()):
        ctx.exit(5)


@click.command("upload")
@click.argument("clip", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--meta",
    "meta_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option("--url", envvar="EVIDENCE_VAULT_URL", required=True, help="[env EVIDENCE_VAULT_URL]")
@click.option(
    "--log-key", "log_keys", multiple=True, help=f"Pinned log verifier key [env {ENV_LOG_KEY}]."
)
@click.option(
    "--wait", "wait_seconds", default=60.0, show_default=True, help="Seconds to wait for the proof."
)
@click.option("--retries", default=5, show_default=True, help="Attempts for transient faults.")
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="EVIDENCE_VAULT_SIGNING_KEY",
    help="This dialer host's signing key (`evidence-vault dialer keygen`): sign the clip "
    "[env EVIDENCE_VAULT_SIGNING_KEY].",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.pass_context
def upload(ctx, clip, meta_path, url, log_keys, wait_seconds, retries, key_path, as_json) -> None:
    """Upload one clip with its metadata, check the receipt and its proof.

    The token comes from $EVIDENCE_VAULT_TOKEN. Exit 0 only when the vault's entry commits
    to this clip and metadata and its inclusion proof verifies against the pinned key.
    """
    token = os.environ.get(ENV_TOKEN)
    keys = log_keys or tuple(k for k in [os.environ.get(ENV_LOG_KEY)] if k)
    if not token or not keys:
        raise ConfigError(
            "upload needs a token and a pinned log key",
            hint=f"set ${ENV_TOKEN}, and --log-key or ${ENV_LOG_KEY} (`evidence-vault log key`)",
        )
    # exit 3 with field errors, nothing sent; the salt is proposed with the upload, so the
    # receipt's clip commitment is checked against this read (docs/agent.md)
    checked = check_pair(clip, meta_path, salt=new_salt())
    signer = load_signer(key_path)
    signature = None
    if signer is not None:
        signature = source_header(
            signer, checked.clip_sha256, checked.meta, checked.evidence.recorded_at
        )
    quiet = _as_json(ctx, as_json) or not sys.stderr.isatty()
    with Uplink(url, token) as link:
        receipt = _send(link, clip, checked, retries, quiet, signature)
        queued = (checked.salt.hex(), checked.clip_commitment or "") if checked.salt else None
        check_opening(  # exit 7 if not
            receipt,
            clip,
            checked.document,
            checked.evidence,
            clip_sha256=checked.clip_sha256,
            queued=queued,
        )
        proof = _await_proof(link, receipt, wait_seconds)
        tree = check_inclusion(proof, receipt["opening"]["entry"], checked.evidence.client, keys)
    out = {k: receipt[k] for k in ("record_id", "client", "campaign", "seq", "entry_hash")}
    out |= {"duplicate": receipt.get("duplicate"), "sealed_at": receipt.get("sealed_at")}
    out |= {"proven_in_tree": tree["tree_size"], "root_hash": tree["root_hash"]}
    if _as_json(ctx, as_json):
        click.echo(json.dumps(out, indent=2))
    else:
        state = "already sealed" if out["duplicate"] else "sealed"
        click.echo(
            f"{state}: record {out['record_id']} (entry {out['seq']}); commitments match the "
            f"local clip and metadata; inclusion proven in tree {tree['tree_size']}"
        )


def _send(
    link: Uplink, clip: Path, checked, retries: int, quiet: bool, signature: str | None
) -> dict:
    backoff = Backoff(0.5, 10.0)
    size = clip.stat().st_size
    for attempt in range(max(1, retries)):
        try:
            with (
                open(os.devnull, "w") as sink,
                click.progressbar(
                    length=size, label="uploading", file=sink if quiet else sys.stderr
                ) as bar,
            ):
                return link.upload(
                    clip,
                    checked.meta,
                    media_type=checked.info.media_type,
                    key=checked.key,
                    progress=bar.update,
                    signature=signature,
                    salt=checked.salt.hex() if checked.salt else None,
                )
        except UploadFailed as exc:
            if not exc.transient:
                raise (exc.cause or exc) from None
            if attempt + 1 >= retries:
                raise StorageError(
                    f"the upload failed {retries} times: {exc.message}",
                    hint="try again later; a repeat is safe (same Idempotency-Key)",
                ) from None
            time.sleep(backoff.delay(attempt, exc.retry_after))
    raise AssertionError("unreachable")


def _await_proof(link: Uplink, receipt: dict, wait_seconds: float) -> dict:
    deadline = time.monotonic() + wait_seconds
    proof = receipt.get("inclusion_proof")
    while not proof:
        if time.monotonic() >= deadline:
            raise StorageError(
                f"record {receipt['record_id']} is sealed, but no checkpoint covered it within "
                f"{wait_seconds:g} s",
                hint="run the same upload again later: it is answered from the sealed record",
            )
        time.sleep(min(2.0, max(0.1, deadline - time.monotonic())))
        try:
            proof = link.receipt(str(receipt["record_id"])).get("inclusion_proof")
        except UploadFailed as exc:
            if not exc.transient:
                raise (exc.cause or exc) from None
    return proof


class _Standalone(click.Group):
    """The slim root: shows a VaultError like the full command does, with its exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VaultError as exc:
            show_error(ctx, exc, bool((ctx.obj or {}).get("json")))


@click.group(cls=_Standalone, name="evidence-vault")
@click.option("--vault", "vault_dir", hidden=True, help="Not used by the agent commands.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.pass_context
def standalone(ctx: click.Context, vault_dir: str | None, as_json: bool) -> None:
    """``evidence-vault agent|upload`` without the vault's own commands (see :mod:`cli`)."""
    ctx.ensure_object(dict)["json"] = as_json


standalone.add_command(agent)
standalone.add_command(upload)
