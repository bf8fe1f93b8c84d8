"""The dialer agent: recordings go from the dialer to the vault with nothing lost, nothing
doubled, nothing altered (docs/agent.md).

::

    watch folder ──► local validation ──► durable spool ──► upload (Idempotency-Key)
        (complete pairs only)   │ bad: quarantine      │ retries     │
                                                        ▼             ▼
                                   receipt checked (commitments, inclusion proof, pinned key)
                                                        │
                                     only then the clip is removed or moved to ``done/``

Modules: :mod:`~vault.agent.config` (agent.toml), :mod:`~vault.agent.spool` (the SQLite
job table), :mod:`~vault.agent.jobkey` (Idempotency-Key), :mod:`~vault.agent.watch`
(complete clip + sidecar pairs), :mod:`~vault.agent.intake` (validation, quarantine,
staging), :mod:`~vault.agent.uplink` (HTTP with retry classification),
:mod:`~vault.agent.retry` (backoff), :mod:`~vault.agent.receipts` (receipt checks and the
JSON Lines book), :mod:`~vault.agent.pipeline` (the running agent),
:mod:`~vault.agent.status` (counts and Prometheus text).
"""
