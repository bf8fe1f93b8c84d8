"""Printing the dispute report as PDF/A-3b, the bundle's files attached (WeasyPrint).

The page is :func:`vault.dispute_report.render_print_html` of the same facts as
report.html; fonts are DejaVu Sans and DejaVu Sans Mono (Debian's ``fonts-dejavu-core``,
installed by default), embedded as subsets as PDF/A requires. Each attachment is an
embedded file with ``/AFRelationship /Data``, listed in the catalogue's ``/AF``.

The exporter's side only: the offline verifier never prints, it reads the PDF back
(:mod:`vault.bundle.pdf`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping

from vault.dispute_report import DisputeFacts, render_print_html, text

#: the PDF/A flavour: part 3 (embedded files allowed), conformance B (visual appearance)
PDF_VARIANT = "pdf/a-3b"


def render_report_pdf(facts: DisputeFacts, attachments: Mapping[str, bytes]) -> bytes:
    """report.pdf: the print page of ``facts`` with ``attachments`` (member name -> bytes)."""
    import weasyprint  # heavy (Pango, HarfBuzz): loaded only when a PDF is made

    # WeasyPrint logs every CSS property it ignores; the page is ours and fixed
    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    files = [
        weasyprint.Attachment(
            file_obj=io.BytesIO(data),
            name=name,
            description=name,
            relationship="Data",
        )
        for name, data in sorted(attachments.items())
    ]
    title = f"{text(facts.language, 'title')} {facts.base.record_id}"
    document = weasyprint.HTML(string=render_print_html(facts)).render()
    document.metadata.title = title
    document.metadata.lang = "en" if facts.language == "en" else "de"
    document.metadata.generator = "evidence-vault"
    pdf = document.write_pdf(pdf_variant=PDF_VARIANT, attachments=files)
    assert pdf is not None
    return pdf
