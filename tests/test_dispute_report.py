"""The dispute report of bundle format 4: report.html and report.pdf, German by default.

One real bundle is exported once (module fixture) from a record with a dispute and an
earlier access; the PDF is read back with poppler's ``pdftotext`` (skipped when absent)
and with pyHanko's reader, and forged copies are checked by ``verify_bundle``.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader

from tests.support.bundles import failed, members
from tests.support.vaults import clip, make_vault, order_meta
from vault.bundle import verify_bundle
from vault.bundle.layout import CHECKS_V4
from vault.bundle.pdf import _parse_cmap
from vault.dispute_report import (
    DisputeFacts,
    DocumentFact,
    TimestampFact,
    WitnessFact,
    local_time,
    mask_phone,
    mmss,
    render_dispute_html,
)
from vault.report import ReportFacts
from vault.sealing.timestamps import TrustRoots
from vault.services.holds import place_hold

PRINCIPAL = "local:lawyer-desk"
PHONE = "+4915112345678"
PDFTOTEXT = shutil.which("pdftotext")
needs_pdftotext = pytest.mark.skipif(
    PDFTOTEXT is None, reason="pdftotext (poppler-utils) is not installed"
)


@dataclass(frozen=True)
class Dispute:
    path: Path  # the format 4 bundle, German
    english: Path  # the same record, English
    no_pdf: Path  # the same record, without report.pdf
    key: str
    record_id: str


@pytest.fixture(scope="module")
def dispute(tmp_path_factory) -> Dispute:
    tmp = tmp_path_factory.mktemp("dispute")
    v = make_vault(tmp / "vault")
    try:
        rid = v.ingest(clip(tmp, seed=3, seconds=3.0), order_meta(20)).record_id
        v.show(rid, principal="local:quality-desk")  # an earlier access, in the custody list
        place_hold(
            v.context,
            rid,
            kind="dispute",
            case_ref="AZ-2026/0815",
            reason="the customer denies the contract",
            principal="local:disputes",
        )
        out = v.export_bundle(rid, tmp / "de.zip", principal=PRINCIPAL)
        english = v.export_bundle(rid, tmp / "en.zip", principal=PRINCIPAL, language="en")
        no_pdf = v.export_bundle(rid, tmp / "plain.zip", principal=PRINCIPAL, pdf=False)
        return Dispute(out, english, no_pdf, v.log_key(), rid)
    finally:
        v.close()


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    assert PDFTOTEXT is not None
    out = subprocess.run([PDFTOTEXT, str(path), "-"], capture_output=True, check=True)
    return out.stdout.decode("utf-8")


def forge(bundle: Path, tmp_path: Path, change) -> Path:
    """A copy of ``bundle`` with ``change`` applied and the manifest brought in line."""
    import hashlib

    files = members(bundle)
    change(files)
    manifest = json.loads(files["manifest.json"])
    manifest["files"] = {
        n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
        for n, d in files.items()
        if n != "manifest.json"
    }
    files["manifest.json"] = json.dumps(manifest).encode()
    out = tmp_path / "forged.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return out


def detail(verdict, name: str) -> str:
    return next(c.detail for c in verdict.checks if c.name == name)


# --- the bundle ----------------------------------------------------------------------------


def test_format_4_bundle_verifies(dispute):
    verdict = verify_bundle(dispute.path, key=dispute.key)
    assert verdict.ok, verdict.summary()
    assert [c.name for c in verdict.checks] == list(CHECKS_V4)
    files = members(dispute.path)
    manifest = json.loads(files["manifest.json"])
    assert manifest["version"] == 4
    assert (manifest["language"], manifest["time_zone"]) == ("de", "Europe/Berlin")
    assert {"custody.json", "report.pdf", "report.html"} <= set(files)
    # the custody list: the earlier read, the dispute, and this export itself, in log order
    custody = json.loads(files["custody.json"])
    types = [json.loads(e["entry"])["type"] for e in custody["entries"]]
    assert types == ["evidence.accessed", "hold.placed", "evidence.accessed"]
    assert detail(verdict, "custody") == "3 entries (2 accesses), each in the log of 4 entries"
    assert "custody.json" in [u.member for u in verdict.unchecked]  # completeness is not proven


def test_bundle_without_pdf_verifies(dispute):
    verdict = verify_bundle(dispute.no_pdf, key=dispute.key)
    assert verdict.ok, verdict.summary()
    assert "report.pdf" not in members(dispute.no_pdf)
    assert detail(verdict, "report-pdf") == "no report.pdf in this bundle (it is optional)"


def test_english_bundle_verifies(dispute, tmp_path):
    verdict = verify_bundle(dispute.english, key=dispute.key)
    assert verdict.ok, verdict.summary()
    report = members(dispute.english)["report.html"].decode()
    assert "<html lang='en'>" in report and "Evidence report for record" in report
    assert "Results of the checks" in report and "Beweisbericht" not in report


# --- report.html ---------------------------------------------------------------------------


def test_html_report_is_german_and_plays_the_clip(dispute):
    report = members(dispute.path)["report.html"].decode()
    assert "<html lang='de'>" in report
    assert f"<audio controls preload='none' src='audio/{dispute.record_id}.wav'></audio>" in report
    for german in (
        "Beweisbericht zum Datensatz",
        "Angerufene Person",
        "+49•••••••••78",  # masked
        "Bestätigung der Identität",
        "Geburtsdatum, Name, Postleitzahl",  # which fields, not their values
        "Ja, ich möchte den Vertrag so abschließen.",
        "Einwilligung in die Aufzeichnung",
        "Textform",
        "Streitfall, Aktenzeichen AZ-2026/0815, durch local:disputes",
        "Nachweis der Zugriffe (Chain of Custody)",
        "local:quality-desk",
        "Ergebnisse der Prüfung",
        "evidence-vault verify-bundle BUNDLE.zip --key &quot;$VAULT_KEY&quot;",
        "evidence-vault log key",
    ):
        assert german in report, german
    assert PHONE not in report and "Max Mustermann" not in report and "1980-01-31" not in report
    # time-stamps and witnesses: not in this bundle, and the report says so
    assert report.count("<p>nicht vorhanden</p>") == 2


def test_html_report_edit_is_found(dispute, tmp_path):
    def cheaper(files):
        files["report.html"] = files["report.html"].replace(b"39.99 EUR", b"19.99 EUR")

    verdict = verify_bundle(forge(dispute.path, tmp_path, cheaper), key=dispute.key)
    # report.pdf carries report.html: the edit shows there too
    assert failed(verdict) == {"report", "report-pdf"}
    assert detail(verdict, "report-pdf") == "report.pdf carries another report.html than the bundle"
    assert detail(verdict, "report") == (
        "report.html does not show what the bundle's checked members prove: it differs from "
        'the report rendered from them in the section "Angebot und Erklärung des Kunden"; do '
        "not rely on it"
    )


def test_language_is_bound_to_the_report(dispute, tmp_path):
    # the manifest's presentation choices are part of what is re-rendered
    def english(files):
        manifest = json.loads(files["manifest.json"])
        manifest["language"] = "en"
        files["manifest.json"] = json.dumps(manifest).encode()

    verdict = verify_bundle(forge(dispute.path, tmp_path, english), key=dispute.key)
    assert failed(verdict) == {"report", "report-pdf"}


def test_unknown_time_zone_is_refused(dispute, tmp_path):
    def nowhere(files):
        manifest = json.loads(files["manifest.json"])
        manifest["time_zone"] = "Mars/Olympus"
        files["manifest.json"] = json.dumps(manifest).encode()

    verdict = verify_bundle(forge(dispute.path, tmp_path, nowhere), key=dispute.key)
    assert "time_zone in manifest.json is not a known time zone" in detail(verdict, "archive")


# --- report.pdf read back ------------------------------------------------------------------


@needs_pdftotext
def test_pdf_reads_back_in_german(dispute, tmp_path):
    text = pdf_text(members(dispute.path)["report.pdf"], tmp_path)
    flat = " ".join(text.split())
    for german in (
        f"Beweisbericht zum Datensatz {dispute.record_id}",
        "Rufnummer (gekürzt) +49•••••••••78",
        "Verfahren Name+Geburtsdatum+Postleitzahl (name+date_of_birth+postcode)",
        "Produkt Fibre 250",
        "Preis 39.99 EUR/month",
        "Laufzeit 24 months",
        "Ja, ich möchte den Vertrag so abschließen.",
        "Einwilligung in die Aufzeichnung bei 00:00 in der Aufnahme",
        "Widerrufsbelehrung nicht markiert",
        "Dokumente in Textform keine",
        "Zeitstempel (RFC 3161) nicht vorhanden",
        "Zeugen-Gegenzeichnungen nicht vorhanden",
        "AZ-2026/0815",
        "Beweispaket erstellt",
        "Ergebnisse der Prüfung",
        # (pdftotext joins "clip-commitment", broken at its hyphen, into one word)
        "Die Aufnahme ist bitgenau die, die der Tresor versiegelt hat. bestanden",
        f"Die Aufnahme ist diesem PDF als Datei audio/{dispute.record_id}.wav angehängt.",
        "evidence-vault verify-bundle BUNDLE.zip",
    ):
        assert german in flat, german
    assert PHONE not in flat and "Max Mustermann" not in flat
    # the times are the client's: 09:30 UTC on 20 November is 10:30 in Berlin
    assert "20.11.2026, 10:30:00 Uhr (UTC+01:00)" in flat


@needs_pdftotext
def test_english_pdf(dispute, tmp_path):
    flat = " ".join(pdf_text(members(dispute.english)["report.pdf"], tmp_path).split())
    assert f"Evidence report for record {dispute.record_id}" in flat
    assert "Time-stamps (RFC 3161) not present" in flat
    assert "2026-11-20 10:30:00 (UTC+01:00)" in flat


def test_pdf_claims_pdfa_3b_and_attaches_the_bundle(dispute):
    files = members(dispute.path)
    reader = PdfFileReader(io.BytesIO(files["report.pdf"]))
    root = reader.root
    xmp = root["/Metadata"].data.decode()
    assert 'pdfaid:part="3"' in xmp and 'pdfaid:conformance="B"' in xmp
    assert root["/OutputIntents"][0]["/S"] == "/GTS_PDFA1"
    pairs = root["/Names"]["/EmbeddedFiles"]["/Names"]
    specs = {str(pairs[i]): pairs[i + 1].get_object() for i in range(0, len(pairs), 2)}
    want = sorted(n for n in files if n not in ("manifest.json", "report.pdf"))
    assert sorted(specs) == want
    for name, spec in specs.items():
        assert spec["/AFRelationship"] == "/Data"
        assert spec["/EF"]["/F"].get_object().data == files[name], name
    assert {id(a.get_object()) for a in root["/AF"]} == {id(s) for s in specs.values()}
    # every font is embedded (PDF/A): DejaVu, as subsets
    fonts = root["/Pages"]["/Kids"][0].get_object()["/Resources"]["/Font"]
    for font in fonts.values():
        descendant = font.get_object()["/DescendantFonts"][0].get_object()
        assert "DejaVu" in str(descendant["/BaseFont"])
        assert "/FontFile2" in descendant["/FontDescriptor"]


# --- forged PDFs ---------------------------------------------------------------------------


def _page_stream_and_fonts(pdf: bytes):
    reader = PdfFileReader(io.BytesIO(pdf))
    page = reader.root["/Pages"]["/Kids"][0].get_object()
    fonts = {
        name: _parse_cmap(font.get_object()["/ToUnicode"].get_object().data)
        for name, font in page["/Resources"]["/Font"].items()
    }
    return page["/Contents"].get_object().data, fonts


def _edit_price(pdf: bytes) -> bytes:
    """Change "39.99" into "49.99" in the text the first page shows, as a forger with a PDF
    editor would: same font, same place, one glyph."""
    data, fonts = _page_stream_and_fonts(pdf)
    for cmap in fonts.values():
        codes = {ch: code for code, ch in cmap.items()}
        if "3" not in codes or "4" not in codes:
            continue
        three, four = (f"<{codes[c]:04x}>".encode() for c in "34")
        price = re.compile(rb"\[" + re.escape(three) + rb"(-?[\d.]+)(<[0-9a-f]{4}>)")
        for m in price.finditer(data):
            if cmap.get(int(m.group(2)[1:-1], 16)) == "9":
                edited = data[: m.start()] + b"[" + four + data[m.start() + 1 + len(three) :]
                return _replace_first_page_content(pdf, edited)
    raise AssertionError("the price is not on the first page")


def _replace_first_page_content(pdf: bytes, content: bytes) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    page_ref = writer.root["/Pages"]["/Kids"].raw_get(0)
    page = page_ref.get_object()
    stream = generic.StreamObject(
        {generic.NameObject("/Filter"): generic.NameObject("/FlateDecode")},
        encoded_data=zlib.compress(content),
    )
    page["/Contents"] = writer.add_object(stream)
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_edited_pdf_text_is_found(dispute, tmp_path):
    def edit(files):
        files["report.pdf"] = _edit_price(files["report.pdf"])

    forged = forge(dispute.path, tmp_path, edit)
    if PDFTOTEXT:  # the forgery is real: a reader sees the other price
        assert "Preis 49.99 EUR/month" in " ".join(
            pdf_text(members(forged)["report.pdf"], tmp_path).split()
        )
    verdict = verify_bundle(forged, key=dispute.key)
    assert failed(verdict) == {"report-pdf"}
    assert detail(verdict, "report-pdf") == (
        "report.pdf does not show what the bundle's checked members prove: its text differs "
        'from the report rendered from them in the section "Angebot und Erklärung des '
        'Kunden"; do not rely on it'
    )


def _swap_attachment(pdf: bytes, name: str, data: bytes) -> bytes:
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    pairs = writer.root["/Names"]["/EmbeddedFiles"]["/Names"]
    index = [str(p) for p in pairs].index(name)
    spec = pairs[index + 1]
    ef = spec["/EF"]
    ef["/F"] = writer.add_object(
        generic.StreamObject(
            {generic.NameObject("/Type"): generic.NameObject("/EmbeddedFile")},
            stream_data=data,
        )
    )
    writer.update_container(spec)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_swapped_attachment_is_found(dispute, tmp_path):
    def swap(files):
        forged = files["evidence.json"].replace(b"39.99 EUR", b"19.99 EUR")
        files["report.pdf"] = _swap_attachment(files["report.pdf"], "evidence.json", forged)

    verdict = verify_bundle(forge(dispute.path, tmp_path, swap), key=dispute.key)
    assert failed(verdict) == {"report-pdf"}
    assert (
        detail(verdict, "report-pdf") == "report.pdf carries another evidence.json than the bundle"
    )


def test_pdf_with_an_annotation_is_refused(dispute, tmp_path):
    # a text box drawn over the page changes what a reader sees, not the text layer
    def annotate(files):
        writer = IncrementalPdfFileWriter(io.BytesIO(files["report.pdf"]))
        page = writer.root["/Pages"]["/Kids"][0]
        note = generic.DictionaryObject(
            {
                generic.NameObject("/Type"): generic.NameObject("/Annot"),
                generic.NameObject("/Subtype"): generic.NameObject("/FreeText"),
                generic.NameObject("/Rect"): generic.ArrayObject(
                    [generic.NumberObject(n) for n in (100, 500, 300, 520)]
                ),
                generic.NameObject("/Contents"): generic.TextStringObject("Preis: 49.99 EUR"),
            }
        )
        page["/Annots"] = generic.ArrayObject([writer.add_object(note)])
        writer.update_container(page)
        out = io.BytesIO()
        writer.write(out)
        files["report.pdf"] = out.getvalue()

    verdict = verify_bundle(forge(dispute.path, tmp_path, annotate), key=dispute.key)
    assert failed(verdict) == {"report-pdf"}
    assert detail(verdict, "report-pdf") == (
        "report.pdf is refused: a page carries annotations (drawn over the page), which a "
        "report never has"
    )


def test_pdf_with_invisible_text_is_refused(dispute, tmp_path):
    # the true text drawn invisible (rendering mode 3) under a forged picture of it
    def hide(files):
        data, _ = _page_stream_and_fonts(files["report.pdf"])
        files["report.pdf"] = _replace_first_page_content(files["report.pdf"], b"3 Tr\n" + data)

    verdict = verify_bundle(forge(dispute.path, tmp_path, hide), key=dispute.key)
    assert failed(verdict) == {"report-pdf"}
    assert detail(verdict, "report-pdf") == (
        "report.pdf is refused: it draws text invisible or as outlines only"
    )


def test_pdf_with_an_action_is_refused(dispute, tmp_path):
    def act(files):
        writer = IncrementalPdfFileWriter(io.BytesIO(files["report.pdf"]))
        action = generic.DictionaryObject(
            {
                generic.NameObject("/S"): generic.NameObject("/URI"),
                generic.NameObject("/URI"): generic.TextStringObject("https://example.org/"),
            }
        )
        writer.root["/OpenAction"] = writer.add_object(action)
        writer.update_root()
        out = io.BytesIO()
        writer.write(out)
        files["report.pdf"] = out.getvalue()

    verdict = verify_bundle(forge(dispute.path, tmp_path, act), key=dispute.key)
    assert failed(verdict) == {"report-pdf"}
    assert detail(verdict, "report-pdf") == (
        "report.pdf is refused: it carries /OpenAction in its catalogue (forms, actions, "
        "layers or scripts), which a report never has"
    )


def test_pdf_with_another_filter_is_refused(dispute, tmp_path):
    def ascii_hex(files):
        data, _ = _page_stream_and_fonts(files["report.pdf"])
        writer = IncrementalPdfFileWriter(io.BytesIO(files["report.pdf"]))
        page = writer.root["/Pages"]["/Kids"][0].get_object()
        page["/Contents"] = writer.add_object(
            generic.StreamObject(
                {generic.NameObject("/Filter"): generic.NameObject("/ASCIIHexDecode")},
                encoded_data=data.hex().encode() + b">",
            )
        )
        writer.update_container(page)
        out = io.BytesIO()
        writer.write(out)
        files["report.pdf"] = out.getvalue()

    verdict = verify_bundle(forge(dispute.path, tmp_path, ascii_hex), key=dispute.key)
    assert detail(verdict, "report-pdf") == (
        "report.pdf is refused: a page's content uses a stream filter the exporter never writes"
    )


def test_pdf_that_is_no_pdf(dispute, tmp_path):
    def junk(files):
        files["report.pdf"] = b"%PDF-1.7\nnot really\n"

    verdict = verify_bundle(forge(dispute.path, tmp_path, junk), key=dispute.key)
    assert failed(verdict) == {"report-pdf"}
    assert detail(verdict, "report-pdf").startswith("report.pdf is refused: it cannot be read")


# --- custody.json --------------------------------------------------------------------------


def test_forged_custody_entry_is_found(dispute, tmp_path):
    def hide(files):
        custody = json.loads(files["custody.json"])
        entry = json.loads(custody["entries"][0]["entry"])
        entry["body"]["principal"] = "local:nobody"  # canonical, but not the logged entry
        custody["entries"][0]["entry"] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
        files["custody.json"] = json.dumps(custody).encode()

    verdict = verify_bundle(forge(dispute.path, tmp_path, hide), key=dispute.key)
    # the report shows the custody list, so both reports differ from the rendering too
    assert failed(verdict) == {"custody", "report", "report-pdf"}
    assert detail(verdict, "custody") == (
        "entry 0 of custody.json is not in the log: its proof does not lead to the root"
    )


def test_dropped_custody_entry_changes_the_report(dispute, tmp_path):
    # dropping an access keeps custody.json provable, but the reports no longer match it
    def drop(files):
        custody = json.loads(files["custody.json"])
        del custody["entries"][0]
        files["custody.json"] = json.dumps(custody).encode()

    verdict = verify_bundle(forge(dispute.path, tmp_path, drop), key=dispute.key)
    assert failed(verdict) == {"report", "report-pdf"}


def test_missing_custody_is_found(dispute, tmp_path):
    verdict = verify_bundle(
        forge(dispute.path, tmp_path, lambda files: files.pop("custody.json")), key=dispute.key
    )
    assert "custody.json is missing" in detail(verdict, "archive")
    assert "custody" in failed(verdict)


# --- the renderer's pieces -----------------------------------------------------------------


def test_masking_and_times():
    assert mask_phone(PHONE) == "+49•••••••••78"
    assert mask_phone("12345") == "•••••"  # too short to show any digit
    assert mask_phone(None) == "—"
    assert (mmss(0), mmss(61_999), mmss(3_600_000)) == ("00:00", "01:01", "60:00")
    assert mmss(-1) == mmss("5") == "—"
    # summer and winter time in the client's zone
    assert local_time("2026-07-01T10:00:00.000Z", "Europe/Berlin", "de") == (
        "01.07.2026, 12:00:00 Uhr (UTC+02:00)"
    )
    assert local_time("2026-12-01T10:00:00Z", "Europe/Berlin", "en") == (
        "2026-12-01 11:00:00 (UTC+01:00)"
    )


def _facts(**over) -> DisputeFacts:
    entry = {"body": {"commitments": {"clip": "c", "meta": "m"}}, "time": "t"}
    base = ReportFacts(
        version=4,
        record_id="r1",
        document={"evidence": {}, "audio": {}},
        entry=json.dumps(entry).encode(),
        salt="s",
        audio_name="audio/r1.wav",
        audio_sha256="a",
        audio_size=1,
        evidence_sha256="e",
        log="telco-de",
        seq=0,
        tree_size=1,
        root_hash="h",
        leaf_hash="l",
        checkpoint="cp",
        verifier_key="k",
        created_at="2026-12-01T10:00:00.000Z",
        checks=dict(CHECKS_V4),
    )
    return replace(DisputeFacts(base=base, language="de", time_zone="Europe/Berlin"), **over)


def test_optional_sections_render_their_facts():
    empty = render_dispute_html(_facts())
    assert "<h2>Dokumente in Textform</h2><p>keine</p>" in empty
    assert "<h2>Zeitstempel (RFC 3161)</h2><p>nicht vorhanden</p>" in empty
    assert "<h2>Zeugen-Gegenzeichnungen</h2><p>nicht vorhanden</p>" in empty
    full = render_dispute_html(
        _facts(
            required_documents=("contract-summary", "approval"),
            documents=(
                DocumentFact(
                    "contract-summary", "application/pdf", "2026-12-01T10:00:00Z", "gültig"
                ),
            ),
            timestamps=(TimestampFact("Test-TSA", "2026-12-01T10:00:01Z", "gültig"),),
            witnesses=(WitnessFact("witness.example", "2026-12-01T10:00:02Z", "gültig"),),
        )
    )
    assert (
        "<td>contract-summary</td><td>application/pdf</td>"
        "<td>01.12.2026, 11:00:00 Uhr (UTC+01:00)</td><td>gültig</td>"
    ) in full
    assert "<td>approval</td><td>—</td><td>—</td><td>Textform ausstehend</td>" in full
    assert "<td>Test-TSA</td><td>01.12.2026, 11:00:01 Uhr (UTC+01:00)</td>" in full
    assert "<td>witness.example</td>" in full


def test_values_are_escaped():
    page = render_dispute_html(
        _facts(base=replace(_facts().base, document={"evidence": {"agent_id": "<b>x</b>"}}))
    )
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


# --- the test vector -----------------------------------------------------------------------

#: a format 4 bundle as exported when the format was introduced (2 s clip, a Textform
#: contract summary, a time-stamp of a test TSA whose root lies beside it, German, with
#: report.pdf; made by scripts/bundle_vector.py): its reports must keep re-rendering byte
#: for byte and keep verifying
VECTOR = Path(__file__).parent / "vectors" / "bundle-v4.zip"
VECTOR_KEY = "evidence-vault+251845b0+Ab+LUBkgxi0S5deC7e+7H8jZda59vWXjD++XoTYgV0e/"


def test_format_4_vector_still_verifies():
    verdict = verify_bundle(VECTOR, key=VECTOR_KEY)
    assert verdict.ok, verdict.summary()
    assert [c.name for c in verdict.checks] == list(CHECKS_V4)
    assert detail(verdict, "report") == (
        "report.html is exactly the report rendered from the checked members"
    )
    assert detail(verdict, "report-pdf").startswith("report.pdf shows exactly the text")
    assert verdict.timestamps[0].status == "unchecked"  # no roots given
    assert detail(verdict, "documents").startswith("1 document(s) sealed with the record")


def test_format_4_vector_time_stamp_checks_against_its_tsa_root():
    roots = TrustRoots.from_files([VECTOR.with_name("bundle-v4-tsa-root.pem")])
    verdict = verify_bundle(VECTOR, key=VECTOR_KEY, tsa_roots=roots)
    assert verdict.ok, verdict.summary()
    assert [t.status for t in verdict.timestamps] == ["valid"]
    assert [t.tsa for t in verdict.timestamps] == ["vector-tsa"]


def test_format_4_vector_report_shows_its_document_and_time_stamp():
    page = members(VECTOR)["report.html"].decode()
    assert "<td>contract-summary</td><td>application/pdf</td>" in page
    assert "<td>vector-tsa</td>" in page
    assert "stempelt diesen Protokollstand" in page
    assert "<td>witnesses</td>" in page and "nicht vorhanden" in page
