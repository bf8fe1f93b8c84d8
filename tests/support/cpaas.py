"""A CPaaS for tests: a loopback media server, signed callbacks, the vault's [cpaas]."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.support.vaults import CAMPAIGN, CLIENT, order_meta

SECRET = b"twilio-auth-token-telco"
OTHER_SECRET = b"twilio-auth-token-acme"
OTHER = "acme-at"
PII = ("+4915112345678", "Mustermann", "1980-01-31")


class MediaServer:
    """Serves one recording at /rec/<sid>: 404 for the first ``not_ready`` requests.

    ``stall``: the first request gets no answer until :attr:`release` is set (a fetch in
    flight, for killing the fetcher mid-way)."""

    def __init__(self, body: bytes, not_ready: int, *, stall: bool = False) -> None:
        self.body, self.not_ready, self.hits = body, not_ready, 0
        self.stall, self.release, self.stalled = stall, threading.Event(), threading.Event()
        #: answer the next request with a redirect to this URL (once)
        self.redirect: str | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits += 1
                if server.stall and server.hits == 1:
                    server.stalled.set()
                    server.release.wait(120)
                    return  # the connection closes without an answer
                if server.redirect:
                    location, server.redirect = server.redirect, None
                    self.send_response(302)
                    self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if server.hits <= server.not_ready:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "audio/x-wav")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def signature(secret: bytes, url: str, form: dict[str, str]) -> str:
    # Twilio's rule, written out here independently of the vault's code
    data = url + "".join(k + form[k] for k in sorted(form))
    return base64.b64encode(hmac.new(secret, data.encode(), hashlib.sha1).digest()).decode()


def custom(meta: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(meta).encode()).rstrip(b"=").decode()


def configure(home: Path, origin: str, extra: str = "") -> None:
    """[cpaas] for two tenants: secrets in 0600 files, a template for the campaign."""
    for name, secret in (("telco.secret", SECRET), ("acme.secret", OTHER_SECRET)):
        (home / name).write_bytes(secret + b"\n")
        (home / name).chmod(0o600)
    template = {k: v for k, v in order_meta().items() if k in ("agent_id", "consent", "intent")} | {
        "identity": {"method": "name+date_of_birth+postcode", "span_ms": [300, 900]}
    }
    (home / "fibre.json").write_text(json.dumps(template))
    with open(home / "vault.toml", "a") as fh:
        fh.write(
            f'\n[cpaas]\nallowed_origins = ["{origin}"]\n{extra}\n'
            f'[cpaas.clients.{CLIENT}]\nsecret_file = "telco.secret"\n'
            f'templates = {{ "{CAMPAIGN}" = "fibre.json" }}\n\n'
            f'[cpaas.clients.{OTHER}]\nsecret_file = "acme.secret"\n'
        )


def callback(
    media: MediaServer, sid: str = "RE0123456789abcdef", n: int = 0, **over: str
) -> dict[str, str]:
    per_call = {
        k: v for k, v in order_meta(n).items() if k in ("order_ref", "callee", "agent_id")
    } | {"identity": {"confirmed": order_meta()["identity"]["confirmed"]}}
    return {
        "AccountSid": "AC0123456789abcdef",
        "CallSid": f"CA{n:016d}",
        "RecordingSid": sid,
        "RecordingUrl": f"{media.origin}/rec/{sid}",
        "RecordingStatus": "completed",
        "RecordingStartTime": "Fri, 20 Nov 2026 09:30:00 +0000",
        "RecordingDuration": "2",
        "EvidenceMetadata": custom(per_call),
    } | over
