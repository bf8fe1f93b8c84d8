"""report.pdf signed (PAdES B-T): a test CA made here, a time-stamping authority on loopback.

The TSA is a real RFC 3161 service over HTTP on 127.0.0.1 (pyHanko's ``DummyTimeStamper``
answering ``application/timestamp-query`` POSTs, its certificate with the critical
``id-kp-timeStamping`` usage, issued by the test CA). The vault signs report.pdf through
``[report]`` in vault.toml; pyHanko's validator, given the test CA, must judge the
signature and its time-stamp valid, and ``verify-bundle`` must accept exactly that one
invisible signature and nothing else.
"""

from __future__ import annotations

import datetime
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.keys import load_cert_from_pemder, load_private_key_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.timestamps import DummyTimeStamper
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from tests.support.bundles import failed, members
from tests.support.vaults import clip, make_vault, order_meta
from tests.test_dispute_report import _edit_price, detail, forge
from vault.bundle import verify_bundle
from vault.errors import VaultError

NOW = datetime.datetime.now(datetime.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject, key, issuer, issuer_key, *, ca=False, eku=None) -> x509.Certificate:
    usage = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    usage |= {"digital_signature": True}
    usage |= {"key_cert_sign": True, "crl_sign": True} if ca else {"content_commitment": True}
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**usage), critical=True)
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(path: Path, obj) -> Path:
    if isinstance(obj, x509.Certificate):
        path.write_bytes(obj.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            obj.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


class _Tsa:
    """An RFC 3161 TSA over HTTP on loopback."""

    def __init__(self, stamper: DummyTimeStamper) -> None:
        self.requests = 0
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                reply = stamper.request_tsa_response(tsp.TimeStampReq.load(body)).dump()
                tsa.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Test Root CA", ca_key, "Test Root CA", ca_key, ca=True)
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = _cert("Evidence Vault Reports", signer_key, "Test Root CA", ca_key)
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # pyHanko: RSA
    tsa_cert = _cert(
        "Test TSA", tsa_key, "Test Root CA", ca_key, eku=[ExtendedKeyUsageOID.TIME_STAMPING]
    )
    paths = {
        "ca": _pem(tmp / "ca.pem", ca),
        "signer": _pem(tmp / "signer.pem", signer),
        "signer_key": _pem(tmp / "signer.key", signer_key),
        "tsa": _pem(tmp / "tsa.pem", tsa_cert),
        "tsa_key": _pem(tmp / "tsa.key", tsa_key),
    }
    stamper = DummyTimeStamper(
        tsa_cert=load_cert_from_pemder(str(paths["tsa"])),
        tsa_key=load_private_key_from_pemder(str(paths["tsa_key"]), None),
        certs_to_embed=[load_cert_from_pemder(str(paths["ca"]))],
    )
    tsa = _Tsa(stamper)
    yield paths, tsa
    tsa.close()


def _signing_vault(home: Path, paths: dict, tsa_url: str):
    """A vault whose operator added a [report] section to vault.toml after init."""
    from vault.config import load_settings
    from vault.facade import Vault
    from vault.services.context import open_vault

    make_vault(home).close()
    with (home / "vault.toml").open("a", encoding="utf-8") as fh:
        fh.write(
            "\n[report]\n"
            f'sign_key = "{paths["signer_key"]}"\n'
            f'sign_cert = "{paths["signer"]}"\n'
            f'sign_chain = ["{paths["ca"]}"]\n'
            f'tsa_url = "{tsa_url}"\n'
        )
    return Vault(open_vault(load_settings(home, env={})))


@pytest.fixture(scope="module")
def signed(pki, tmp_path_factory):
    paths, tsa = pki
    tmp = tmp_path_factory.mktemp("signed")
    v = _signing_vault(tmp / "vault", paths, tsa.url)
    try:
        rid = v.ingest(clip(tmp, seed=5), order_meta(30)).record_id
        before = tsa.requests
        out = v.export_bundle(rid, tmp / "signed.zip")
        assert tsa.requests > before  # the signature was time-stamped by the TSA
        return out, v.log_key()
    finally:
        v.close()


def test_signed_report_verifies(signed):
    path, key = signed
    verdict = verify_bundle(path, key=key)
    assert verdict.ok, verdict.summary()
    assert "signed by Common Name: Evidence Vault Reports, time-stamped 20" in detail(
        verdict, "report-pdf"
    )
    # trust in the certificates is the reader's decision, and the verdict says so
    assert any(
        u.member == "report.pdf" and "Evidence Vault Reports" in u.detail for u in verdict.unchecked
    )


def test_pyhanko_validator_accepts_signature_and_timestamp(signed, pki):
    paths, _ = pki
    pdf = members(signed[0])["report.pdf"]
    reader = PdfFileReader(io.BytesIO(pdf))
    (sig,) = reader.embedded_signatures
    roots = ValidationContext(
        trust_roots=[load_cert_from_pemder(str(paths["ca"]))], allow_fetching=False
    )
    status = validate_pdf_signature(sig, roots, ts_validation_context=roots)
    assert status.bottom_line, status.pretty_print_details()
    assert status.trusted and status.intact and status.valid
    assert status.coverage.name == "ENTIRE_FILE"
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted
    assert abs(status.timestamp_validity.timestamp - NOW) < datetime.timedelta(minutes=30)
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"  # PAdES
    # still PDF/A-3b, attachments and all
    assert 'pdfaid:part="3"' in reader.root["/Metadata"].data.decode()


def test_broken_signature_is_found(signed, tmp_path):
    path, key = signed

    def break_signature(files):
        # one byte the signature covers and nobody sees: the signature field's name
        pdf = files["report.pdf"]
        assert pdf.count(b"(Beweisbericht)") == 1
        files["report.pdf"] = pdf.replace(b"(Beweisbericht)", b"(Beweisberichx)")

    verdict = verify_bundle(forge(path, tmp_path, break_signature), key=key)
    assert failed(verdict) == {"report-pdf"}
    assert detail(verdict, "report-pdf") == (
        "report.pdf's signature: the signature does not match the file (broken or altered)"
    )


def test_signed_pdf_edited_after_signing_is_found(signed, tmp_path):
    path, key = signed

    def edit(files):
        files["report.pdf"] = _edit_price(files["report.pdf"])

    verdict = verify_bundle(forge(path, tmp_path, edit), key=key)
    assert failed(verdict) == {"report-pdf"}
    found = detail(verdict, "report-pdf")
    assert "its text differs from the report rendered from them in the section" in found
    assert "report.pdf's signature: the signature does not cover the whole file" in found


def test_tsa_outage_writes_no_bundle(pki, tmp_path):
    paths, _ = pki
    v = _signing_vault(tmp_path / "vault", paths, "http://127.0.0.1:9/tsa")
    try:
        rid = v.ingest(clip(tmp_path, seed=6), order_meta(31)).record_id
        with pytest.raises(VaultError, match=r"report\.pdf could not be signed"):
            v.export_bundle(rid, tmp_path / "b.zip")
        assert not (tmp_path / "b.zip").exists()
        # without the PDF the export does not need the TSA
        plain = v.export_bundle(rid, tmp_path / "plain.zip", pdf=False)
        assert verify_bundle(plain, key=v.log_key()).ok
    finally:
        v.close()


def test_report_settings_must_come_together(tmp_path):
    from vault.config import ConfigError, load_settings

    (tmp_path / "vault.toml").write_text('[report]\nsign_key = "k.pem"\n')
    with pytest.raises(ConfigError, match="sign_key and sign_cert together"):
        load_settings(tmp_path, env={})
    (tmp_path / "vault.toml").write_text(json.dumps({}).replace("{}", ""))
    assert load_settings(tmp_path, env={}).report_sign_key is None
