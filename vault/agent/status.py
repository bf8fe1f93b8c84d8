"""What the agent owes and how it is doing: for ``agent status`` and for Prometheus.

Read straight from the spool (SQLite WAL lets a reader in while the agent writes), so the
status is right whether or not the agent runs.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from vault.agent.config import AgentConfig
from vault.agent.spool import STATES, Spool


def quarantined(cfg: AgentConfig) -> int:
    """Clips in the quarantine folder (each with its reason file): refused locally before
    they became jobs, or refused by the vault. What a person has to look at."""
    if cfg.quarantine is None or not cfg.quarantine.exists():
        return 0
    return sum(1 for p in cfg.quarantine.iterdir() if p.name.endswith(".reason.txt"))


def agent_status(cfg: AgentConfig) -> dict:
    """Counts per state, the oldest open job's age, and the latest error (no PII)."""
    spool = Spool(cfg.spool_path, reader=True)
    try:
        counts = spool.counts()
        oldest = spool.oldest_open()
        last = spool.last_error()
        alerts = [
            {"id": j.id, "name": j.name, "reason": j.last_error, "clip": str(j.clip)}
            for j in spool.alerts()
        ]
    finally:
        spool.close()
    now = time.time()
    return {
        "queued": counts["queued"],
        "in_flight": counts["uploading"],
        "waiting_proof": counts["waiting_proof"],
        "done": counts["done"],
        "quarantined": quarantined(cfg),
        "alert": counts["alert"],
        "oldest_waiting_seconds": round(now - oldest, 1) if oldest is not None else None,
        "last_error": last[0] if last else None,
        "last_error_age_seconds": round(now - last[1], 1) if last else None,
        # the jobs to look at (the first 20), then `agent retry`
        "alerts": alerts,
    }


def status_text(status: dict) -> str:
    lines = [
        f"queued          {status['queued']}",
        f"in flight       {status['in_flight']}",
        f"waiting proof   {status['waiting_proof']}",
        f"done            {status['done']}",
        f"quarantined     {status['quarantined']}",
        f"alert           {status['alert']}",
    ]
    oldest = status["oldest_waiting_seconds"]
    lines.append(f"oldest waiting  {'-' if oldest is None else f'{oldest:.0f} s'}")
    if status["last_error"]:
        lines.append(
            f"last error      {status['last_error']} ({status['last_error_age_seconds']:.0f} s ago)"
        )
    for job in status.get("alerts", []):
        lines.append(f"ALERT job {job['id']} ({job['name']}): {job['reason']}")
        lines.append(f"  clip kept in {job['clip']}; after a look: agent retry {job['id']}")
    return "\n".join(lines)


def prometheus_text(cfg: AgentConfig) -> str:
    """The text exposition format (version 0.0.4)."""
    spool = Spool(cfg.spool_path, reader=True)
    try:
        counts = spool.counts()
        oldest = spool.oldest_open()
    finally:
        spool.close()
    out = [
        "# HELP evidence_agent_jobs Jobs in the agent's spool, by state.",
        "# TYPE evidence_agent_jobs gauge",
    ]
    counts["quarantined"] = quarantined(cfg)
    out += [f'evidence_agent_jobs{{state="{s}"}} {counts[s]}' for s in STATES]
    age = time.time() - oldest if oldest is not None else 0.0
    out += [
        "# HELP evidence_agent_oldest_open_job_seconds Age of the oldest job not yet done.",
        "# TYPE evidence_agent_oldest_open_job_seconds gauge",
        f"evidence_agent_oldest_open_job_seconds {age:.3f}",
        "# HELP evidence_agent_alert 1 while any job's receipt did not match its clip.",
        "# TYPE evidence_agent_alert gauge",
        f"evidence_agent_alert {1 if counts['alert'] else 0}",
    ]
    return "\n".join(out) + "\n"


class MetricsServer:
    """``GET /metrics`` on 127.0.0.1 only: the spool's counts are the operator's business."""

    def __init__(self, cfg: AgentConfig, port: int) -> None:
        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = prometheus_text(cfg).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
