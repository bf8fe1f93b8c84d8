"""A real Time-Stamping Authority on loopback: ``openssl ts -reply`` behind a small HTTP
handler (RFC 3161 §3.4, ``application/timestamp-query`` in, ``-reply`` out), with a test CA
and TSA certificate made here with the ``cryptography`` x509 builder.

Besides honest answers it can misbehave on purpose (:attr:`LoopbackTsa.mode`): answer with
garbage, stamp another digest, answer another request (nonce), refuse, or be down.
:func:`resign` re-signs a token's TSTInfo with another certificate (``openssl cms``) for the
tokens ``openssl ts`` itself refuses to make, e.g. by a certificate without the EKU.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import http.server
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from rfc3161_client import _rust as rfc3161_rust

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="the loopback TSA needs `openssl ts`")
#: the certificates are valid from here for a century: fixed tokens stay checkable
NOT_BEFORE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
POLICY = "1.3.6.1.4.1.99999.1"
TSTINFO_OID = "1.2.840.113549.1.9.16.1.4"

_CONFIG = """\
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
serial = {serial}
crypto_device = builtin
default_policy = {policy}
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
signer_digest = sha256
"""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@dataclass(frozen=True)
class Pki:
    """A test CA and one TSA certificate it issued, as PEM files."""

    ca: Path
    cert: Path
    key: Path


def make_pki(folder: Path, label: str = "Test", *, eku: str = "critical") -> Pki:
    """A CA and a TSA certificate under ``folder``. ``eku``: ``critical`` (a real TSA's),
    ``none`` (no EKU) or ``noncritical``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    until = NOT_BEFORE + dt.timedelta(days=36500)
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{label} TSA Root CA"))
        .issuer_name(_name(f"{label} TSA Root CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{label} TSA"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False),
            critical=True,
        )
    )
    if eku != "none":
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
            critical=eku == "critical",
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    pem = serialization.Encoding.PEM
    return Pki(
        ca=_pem(folder / "ca.pem", ca.public_bytes(pem)),
        cert=_pem(folder / "tsa.pem", cert.public_bytes(pem)),
        key=_pem(
            folder / "tsa.key",
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        ),
    )


def query_for(digest: bytes, *, nonce: bool = True) -> bytes:
    """A TimeStampReq for a SHA-256 digest, made by ``openssl ts -query``."""
    args = [OPENSSL, "ts", "-query", "-digest", digest.hex(), "-sha256", "-cert"]
    if not nonce:
        args.append("-no_nonce")
    return subprocess.run(args, capture_output=True, check=True).stdout


class LoopbackTsa:
    """An RFC 3161 TSA over HTTP on 127.0.0.1, signing with ``openssl ts -reply``.

    ``mode``: ``ok``; ``garbage`` (bytes that are no DER); ``wrong-imprint`` (stamps
    another digest); ``wrong-nonce`` (answers a fresh request for the same digest);
    ``refuse`` (HTTP 500). :meth:`stop` takes it down (connections refused).
    """

    def __init__(self, folder: Path, pki: Pki | None = None, *, label: str = "Test") -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.pki = pki or make_pki(folder / "pki", label)
        (folder / "serial").write_text("01\n")
        self._config = folder / "openssl-ts.cnf"
        self._config.write_text(_CONFIG.format(serial=folder / "serial", policy=POLICY))
        self.mode = "ok"
        self.requests = 0
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/tsr"

    def start(self) -> LoopbackTsa:
        tsa = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, body = tsa.answer(query)
                self.send_response(status)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def answer(self, query: bytes) -> tuple[int, bytes]:
        with self._lock:
            self.requests += 1
            if self.mode == "refuse":
                return 500, b"TSA unavailable"
            if self.mode == "garbage":
                return 200, b"\x30\x03not a time-stamp response"
            if self.mode == "wrong-imprint":
                query = query_for(hashlib.sha256(b"another message").digest())
            elif self.mode == "wrong-nonce":
                request = rfc3161_rust.parse_timestamp_request(query)
                query = query_for(request.message_imprint.message)
            return 200, self.reply(query)

    def reply(self, query: bytes) -> bytes:
        """``openssl ts -reply`` to a DER query: a DER TimeStampResp."""
        q = self.folder / "query.tsq"
        q.write_bytes(query)
        return subprocess.run(
            [
                OPENSSL, "ts", "-reply", "-config", str(self._config), "-queryfile", str(q),
                "-signer", str(self.pki.cert), "-inkey", str(self.pki.key),
            ],
            capture_output=True,
            check=True,
        ).stdout  # fmt: skip

    def stamp(self, message: bytes) -> bytes:
        """A token over SHA-256(``message``), straight from openssl (no HTTP)."""
        with self._lock:
            return self.reply(query_for(hashlib.sha256(message).digest()))


def _der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def resign(response: bytes, pki: Pki, folder: Path) -> bytes:
    """The same TSTInfo (time, serial, imprint), signed with ``pki``'s certificate by
    ``openssl cms`` and wrapped as a granted TimeStampResp: a token ``openssl ts`` would
    refuse to make (e.g. by a certificate that is no TSA's)."""
    token = rfc3161_rust.parse_timestamp_response(response).time_stamp_token()
    content = _tst_info(token)
    src, out = folder / "tstinfo.der", folder / "resigned.p7"
    src.write_bytes(content)
    subprocess.run(
        [
            OPENSSL, "cms", "-sign", "-binary", "-nodetach", "-econtent_type", TSTINFO_OID,
            "-in", str(src), "-signer", str(pki.cert), "-inkey", str(pki.key),
            "-outform", "DER", "-md", "sha256", "-nosmimecap", "-out", str(out),
        ],
        capture_output=True,
        check=True,
    )  # fmt: skip
    body = bytes.fromhex("3003020100") + out.read_bytes()  # PKIStatusInfo {granted}
    return b"\x30" + _der_length(len(body)) + body


def _tst_info(token: bytes) -> bytes:
    """The DER TSTInfo inside a token's eContent (the OCTET STRING after the TSTInfo OID)."""
    oid = bytes.fromhex("060b2a864886f70d0109100104")
    at = token.index(oid) + len(oid)
    assert token[at] == 0xA0  # [0] EXPLICIT
    at += 1 + _length_size(token, at + 1)
    assert token[at] == 0x04  # OCTET STRING
    size = _length_value(token, at + 1)
    start = at + 1 + _length_size(token, at + 1)
    return token[start : start + size]


def _length_size(data: bytes, at: int) -> int:
    return 1 if data[at] < 0x80 else 1 + (data[at] & 0x7F)


def _length_value(data: bytes, at: int) -> int:
    if data[at] < 0x80:
        return data[at]
    n = data[at] & 0x7F
    return int.from_bytes(data[at + 1 : at + 1 + n], "big")


def flip_gen_time(response: bytes) -> bytes:
    """The token with the last digit of its genTime changed (0<->1, 2<->3, ...): still DER,
    but no longer what the TSA signed."""
    import re

    found = re.search(rb"\x18\x0f(\d{14})Z", response)
    assert found is not None, "no GeneralizedTime in the token"
    at = found.end() - 2
    return response[:at] + bytes([response[at] ^ 0x01]) + response[at + 1 :]
