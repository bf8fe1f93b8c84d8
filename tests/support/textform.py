"""Sample Textform documents: an RFC 5322 e-mail, a small valid PDF, an SMS text.

The personal data in them (names, an address) is invented; tests check it never reaches
the log.
"""

from __future__ import annotations

from pathlib import Path

EMAIL = (
    b"From: Telco DE Vertrieb <vertrieb@telco.example>\r\n"
    b"To: Max Mustermann <max.mustermann@example.org>\r\n"
    b"Subject: Ihre Vertragszusammenfassung Fibre 250\r\n"
    b"Date: Fri, 20 Nov 2026 10:02:00 +0100\r\n"
    b"Message-ID: <summary-000123@telco.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Guten Tag Herr Mustermann,\r\n"
    b"anbei die Vertragszusammenfassung nach \xc2\xa754 Abs. 3 TKG.\r\n"
)

APPROVAL_SMS = (
    "JA – ich genehmige den Vertrag Fibre 250 (ORD-2026-000123). Max Mustermann\n".encode()
)


def pdf(text: str = "Vertragszusammenfassung Fibre 250") -> bytes:
    """A minimal, valid one-page PDF 1.4 (cross-reference offsets computed)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path
