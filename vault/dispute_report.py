"""The dispute report of a format 4 evidence bundle: German by default, English on request.

One renderer, two outputs from the same :class:`DisputeFacts`:

* ``report.html`` (:func:`render_dispute_html`): the bundle's readable copy, with an
  ``<audio>`` element that plays the bundled clip once the ZIP is unpacked. The offline
  verifier renders it again from the checked members and requires byte-identity, as for
  the earlier formats (whose renderer, :mod:`vault.report`, stays frozen).
* the page the PDF is printed from (:func:`render_print_html`, printed by
  :mod:`vault.dispute_pdf`); the verifier compares the PDF's text layer with
  :func:`expected_pdf_text` of the same facts.

Every fact shown comes from a member the verifier checks: the sealed document, the sealed
entry, the checkpoint, the custody entries (each with an inclusion proof). The language
and the time zone are presentation choices stated in the manifest. The German and English
texts live in one table here (:data:`TEXTS`), written for a lawyer, not an engineer.

Pure code only (no database, no storage, no WeasyPrint): it runs on an auditor's machine.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vault.report import BUNDLE_PLACEHOLDER, ReportFacts

# --- the facts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CustodyEvent:
    """One sealed log entry of the record's chain of custody (custody.json)."""

    seq: int
    time: str  # the entry's time, UTC, as sealed
    type: str  # evidence.accessed or hold.*
    body: dict


@dataclass(frozen=True)
class DocumentFact:
    """A Textform document sealed with the record (built in parallel: fed when present)."""

    kind: str  # contract-summary, approval, confirmation, cancellation-authorisation, other
    media_type: str
    sealed_at: str  # UTC
    verdict: str  # what the verifier found, e.g. "valid"


@dataclass(frozen=True)
class TimestampFact:
    """An RFC 3161 time-stamp of the bundle's checkpoint (built in parallel)."""

    tsa: str
    time: str  # genTime, UTC
    verdict: str


@dataclass(frozen=True)
class WitnessFact:
    """A witness cosignature of the bundle's checkpoint (built in parallel)."""

    name: str
    time: str  # UTC
    verdict: str


@dataclass(frozen=True)
class DisputeFacts:
    """What a format 4 report shows: the earlier report's facts, and more."""

    base: ReportFacts
    language: str  # "de" or "en" (manifest.json)
    time_zone: str  # IANA name, the client's (manifest.json)
    custody: tuple[CustodyEvent, ...] = ()
    required_documents: tuple[str, ...] = ()  # kinds the campaign requires
    documents: tuple[DocumentFact, ...] = ()
    timestamps: tuple[TimestampFact, ...] = ()
    witnesses: tuple[WitnessFact, ...] = ()
    #: the members report.pdf carries (the print page lists them)
    attachments: tuple[str, ...] = field(default=())


# --- the texts, German and English ---------------------------------------------------------

#: every sentence and label of the report, by key: (German, English)
TEXTS: dict[str, tuple[str, str]] = {
    "title": ("Beweisbericht zum Datensatz", "Evidence report for record"),
    "intro": (
        "Dieser Bericht gibt lesbar wieder, was die übrigen Dateien dieses Beweispakets "
        "nachweisen: die Aufnahme eines Telefonats und die dazu versiegelten Angaben. "
        "Beweiskraft haben diese Dateien, nicht der Bericht; ihre Prüfung (Abschnitt "
        "„Ergebnisse der Prüfung“) erzeugt diesen Bericht erneut aus ihnen und schlägt "
        "fehl, wenn er in einem einzigen Zeichen abweicht. Das Paket enthält "
        "personenbezogene Daten; bitte entsprechend behandeln.",
        "This report is a readable copy of what the other files of this evidence bundle "
        "prove: the recording of a telephone call and the facts sealed with it. What proves "
        "the evidence are those files, not the report; their check (section “Results of the "
        "checks”) renders this report again from them and fails if a single character "
        "differs. The bundle contains personal data; handle it accordingly.",
    ),
    "times_note": (
        "Zeiten in der Zeitzone des Auftraggebers ({zone}); Zeitpunkte in der Aufnahme als "
        "Minuten:Sekunden ab Beginn.",
        "Times in the client's time zone ({zone}); points in the recording as "
        "minutes:seconds from its start.",
    ),
    "none": ("keine", "none"),
    "not_present": ("nicht vorhanden", "not present"),
    "not_marked": ("nicht markiert", "not marked"),
    "dash": ("—", "—"),
    "span": ("{start} bis {end} in der Aufnahme", "{start} to {end} into the recording"),
    "at": ("bei {at} in der Aufnahme", "at {at} into the recording"),
    # who was called
    "s_called": ("Angerufene Person", "Who was called"),
    "phone": ("Rufnummer (gekürzt)", "Phone number (masked)"),
    "recorded_at": ("Aufgenommen am", "Recorded at"),
    "client": ("Auftraggeber", "Client"),
    "campaign": ("Kampagne", "Campaign"),
    "order_ref": ("Auftragsnummer", "Order reference"),
    "call": ("Anruf / Abschnitt", "Call id / segment"),
    "agent": ("Mitarbeiter", "Agent"),
    # identity
    "s_identity": ("Bestätigung der Identität", "Identity confirmation"),
    "method": ("Verfahren", "Method"),
    "confirmed_fields": ("Bestätigte Angaben", "Confirmed fields"),
    "where": ("Stelle in der Aufnahme", "Place in the recording"),
    "field.name": ("Name", "name"),
    "field.date_of_birth": ("Geburtsdatum", "date of birth"),
    "field.postcode": ("Postleitzahl", "postcode"),
    "field.address": ("Anschrift", "address"),
    "field.customer_number": ("Kundennummer", "customer number"),
    "field.iban": ("IBAN", "IBAN"),
    "field.email": ("E-Mail-Adresse", "e-mail address"),
    # offer and statement
    "s_offer": ("Angebot und Erklärung des Kunden", "Offer and the customer's statement"),
    "product": ("Produkt", "Product"),
    "price": ("Preis", "Price"),
    "term": ("Laufzeit", "Term"),
    "statement": ("Erklärung des Kunden (Wortlaut)", "The customer's statement (verbatim)"),
    # consent and withdrawal
    "s_consent": ("Einwilligung und Widerrufsbelehrung", "Consent and withdrawal notice"),
    "consent_recording": (
        "Einwilligung in die Aufzeichnung",
        "Consent to the recording",
    ),
    "advertising": ("Werbeeinwilligung", "Advertising consent"),
    "advertising_value": (
        "Quelle {source}, erteilt am {at}, Referenz {ref}",
        "source {source}, obtained at {at}, reference {ref}",
    ),
    "withdrawal": ("Widerrufsbelehrung", "Withdrawal notice"),
    # documents
    "s_documents": ("Dokumente in Textform", "Textform documents"),
    "doc_kind": ("Art", "Kind"),
    "doc_type": ("Format", "Media type"),
    "doc_sealed": ("Versiegelt am", "Sealed at"),
    "doc_verdict": ("Prüfergebnis", "Verdict"),
    "doc_pending": ("Textform ausstehend", "pending Textform"),
    "source_key": ("Signiert vom Wählsystem", "Signed by the dialer host"),
    "source_value": (
        "Schlüssel {key} (Ed25519; Prüfung „source-signature“, Registrierung im Protokoll)",
        "key {key} (Ed25519; check “source-signature”, registration in the log)",
    ),
    "doc_in_log": (
        "versiegelt, im Protokoll (Prüfung „documents“)",
        "sealed, in the log (check “documents”)",
    ),
    "ts_imprint": (
        "stempelt diesen Protokollstand; Signatur: Prüfung „timestamp“",
        "stamps this log state; signature: check “timestamp”",
    ),
    "ts_unreadable": (
        "stempelt nicht diesen Protokollstand oder ist nicht lesbar (Prüfung „timestamp“)",
        "does not stamp this log state or is unreadable (check “timestamp”)",
    ),
    "witness_listed": (
        "gegengezeichnet; mit dem Schlüssel des Zeugen zu prüfen (Prüfung „witnesses“)",
        "cosigned; to be checked with the witness's key (check “witnesses”)",
    ),
    "doc_pending_row": ("{kind}: Textform ausstehend", "{kind}: pending Textform"),
    # dispute
    "s_case": ("Streitfall und Sperren", "Dispute and holds"),
    "hold.placed": ("Sperre gesetzt", "Hold placed"),
    "hold.release_requested": ("Aufhebung beantragt", "Release requested"),
    "hold.released": ("Sperre aufgehoben", "Hold released"),
    "hold_value": (
        "{kind}, Aktenzeichen {case}, durch {by} (Sperre {hold})",
        "{kind}, case {case}, by {by} (hold {hold})",
    ),
    "dispute": ("Streitfall", "dispute"),
    "legal": ("gesetzliche Aufbewahrung", "legal hold"),
    # custody
    "s_custody": ("Nachweis der Zugriffe (Chain of Custody)", "Chain of custody"),
    "custody_intro": (
        "Jeder Zugriff auf die Aufnahme wird vor dem Entschlüsseln im Protokoll vermerkt. "
        "Aufgeführt sind die Protokolleinträge zu diesem Datensatz bis zum Stand der "
        "Prüfsumme (Checkpoint) dieses Pakets.",
        "Every access to the recording is logged before anything is decrypted. Listed are "
        "the log entries about this record up to this bundle's checkpoint.",
    ),
    "c_time": ("Zeit", "Time"),
    "c_person": ("Person", "Person"),
    "c_what": ("Zugriff", "Access"),
    "c_reason": ("Grund / Aktenzeichen", "Reason / case"),
    "what.bundle": ("Beweispaket erstellt", "evidence bundle made"),
    "what.audio": ("Aufnahme abgerufen", "recording retrieved"),
    "what.metadata": ("Angaben angesehen", "facts viewed"),
    "what.evidence": ("Freigabe am Schalter", "opened at the desk"),
    "reason.dispute": ("Streitfall", "dispute"),
    "reason.cancellation": ("Kündigung", "cancellation"),
    "reason.complaint": ("Beschwerde", "complaint"),
    "reason.data-subject-request": ("Auskunftsersuchen", "data subject request"),
    "reason.authority-request": ("Behördenanfrage", "authority request"),
    "reason.quality-audit": ("Qualitätsprüfung", "quality audit"),
    # time-stamps and witnesses
    "s_timestamps": ("Zeitstempel (RFC 3161)", "Time-stamps (RFC 3161)"),
    "tsa": ("Zeitstempeldienst", "Time-Stamping Authority"),
    "s_witnesses": ("Zeugen-Gegenzeichnungen", "Witness cosignatures"),
    "witness": ("Zeuge", "Witness"),
    "time": ("Zeit", "Time"),
    "verdict": ("Ergebnis", "Verdict"),
    # the recording
    "s_audio": ("Die Aufnahme", "The recording"),
    "audio_file": ("Datei im Paket", "File in this bundle"),
    "audio_play": (
        "Wiedergabe (nach dem Entpacken des Pakets)",
        "Playback (once the bundle is unpacked)",
    ),
    "audio_attached": (
        "Die Aufnahme ist diesem PDF als Datei {name} angehängt.",
        "The recording is attached to this PDF as the file {name}.",
    ),
    "duration": ("Dauer", "Duration"),
    "format": ("Format", "Format"),
    "size": ("Größe", "Size"),
    "bytes": ("{n} Bytes", "{n} bytes"),
    "sealed_at": ("Im Tresor versiegelt am", "Sealed in the vault at"),
    "retain_until": ("Aufbewahrt bis", "Kept until"),
    "made_at": (
        "Paket erstellt am (Angabe des Erstellers, nicht versiegelt)",
        "Bundle made at (its maker's statement, not sealed)",
    ),
    # results
    "s_results": ("Ergebnisse der Prüfung", "Results of the checks"),
    "results_intro": (
        "Bei der Erstellung dieses Pakets hat der Tresor es mit demselben Prüfprogramm "
        "geprüft, das jeder Empfänger selbst ausführen kann; ein Paket, das eine Prüfung "
        "nicht besteht, wird nicht ausgegeben. Jede Prüfung wurde bestanden; „nicht "
        "vorhanden“ heißt, das Paket enthält nichts, was sie prüfen könnte:",
        "When this bundle was made, the vault checked it with the same program any "
        "recipient can run; a bundle that fails a check is not handed out. Every check "
        "passed; “not present” means the bundle holds nothing for it to check:",
    ),
    "r_check": ("Prüfung", "Check"),
    "r_proves": ("Was sie nachweist", "What it proves"),
    "r_result": ("Ergebnis", "Result"),
    "passed": ("bestanden", "passed"),
    "s_repeat": ("So wiederholen Sie die Prüfung", "How to repeat the checks"),
    "repeat_1": (
        "Die Prüfung braucht keinen Zugang zum Tresor. Erforderlich sind das Programm "
        "evidence-vault (Befehl verify-bundle) und der öffentliche Prüfschlüssel des "
        "Tresors. Den Schlüssel erhalten Sie vom Betreiber des Tresors über einen Weg, dem "
        "Sie vertrauen (der Betreiber gibt ihn mit „evidence-vault log key“ aus), nicht "
        "aus diesem Paket: wer das Paket übergibt, könnte beides ausgetauscht haben.",
        "The check needs no access to the vault. It needs the program evidence-vault "
        "(command verify-bundle) and the vault's public verifier key. Obtain the key from "
        "the vault operator through a channel you trust (they print it with “evidence-vault "
        "log key”), not from this bundle: whoever hands you the bundle could have replaced "
        "both.",
    ),
    "repeat_2": (
        "Legen Sie den Schlüssel in der Umgebungsvariablen VAULT_KEY ab und führen Sie "
        "aus ({bundle} steht für dieses Paket):",
        "Put the key in the environment variable VAULT_KEY and run ({bundle} being this bundle):",
    ),
    "repeat_3": (
        "Zum Vergleich: der mitgelieferte Schlüssel lautet {key}. Das Ergebnis muss "
        "„valid“ lauten. Die Formate sind in docs/formats.md des Tresors beschrieben; "
        "jede Prüfung lässt sich auch mit Standardwerkzeugen nachvollziehen.",
        "For comparison: the shipped key is {key}. The result must read “valid”. The "
        "formats are described in the vault's docs/formats.md; each check can also be "
        "redone with standard tools.",
    ),
    # technical appendix
    "s_technical": ("Technischer Anhang", "Technical appendix"),
    "sha_audio": ("SHA-256 der Aufnahme", "SHA-256 of the recording"),
    "sha_evidence": ("SHA-256 von evidence.json", "SHA-256 of evidence.json"),
    "commit_clip": ("Festlegung (Commitment) der Aufnahme", "Commitment to the recording"),
    "commit_meta": ("Festlegung (Commitment) der Angaben", "Commitment to the facts"),
    "salt": ("Salz der Festlegungen", "Commitment salt"),
    "leaf": ("Hash des Protokolleintrags", "Log entry hash (Merkle leaf)"),
    "log": ("Protokoll (Auftraggeber)", "Log (client)"),
    "seq": ("Eintragsnummer", "Entry number (seq)"),
    "tree_size": ("Protokollstand (Einträge)", "Checkpoint tree size"),
    "root": ("Wurzel-Hash des Protokolls", "Checkpoint root hash"),
    "s_checkpoint": ("Unterschriebener Protokollstand (Checkpoint)", "Signed checkpoint"),
    "s_attachments": ("Angehängte Dateien", "Attached files"),
    "attachments_intro": (
        "Dieses PDF trägt die Dateien des Beweispakets als Anhänge (PDF/A-3):",
        "This PDF carries the evidence bundle's files as attachments (PDF/A-3):",
    ),
}

#: what each check proves, for a lawyer (the English text of version 4 is CHECKS_V4's)
CHECK_TEXTS: dict[str, tuple[str, str]] = {
    "archive": (
        "Das Paket ist vollständig: es enthält genau die im Verzeichnis (manifest.json) "
        "aufgeführten Dateien, jede mit der dort genannten Prüfsumme.",
        "The bundle is complete: it holds exactly the files its list (manifest.json) "
        "names, each with the checksum given there.",
    ),
    "entry": (
        "Der Protokolleintrag gehört zu diesem Datensatz und diesem Auftraggeber.",
        "The log entry is about this record and this client.",
    ),
    "clip-commitment": (
        "Die Aufnahme ist bitgenau die, die der Tresor versiegelt hat.",
        "The recording is, bit for bit, the one the vault sealed.",
    ),
    "meta-commitment": (
        "Die Angaben zum Gespräch (evidence.json) sind genau die versiegelten.",
        "The facts of the call (evidence.json) are exactly the sealed ones.",
    ),
    "audio": (
        "Format, Dauer und Größe der Aufnahme entsprechen dem Protokolleintrag.",
        "The recording's format, duration and size are those of the log entry.",
    ),
    "inclusion": (
        "Der Eintrag steht im fortlaufenden, nur ergänzbaren Protokoll des Auftraggebers.",
        "The entry is in the client's append-only log.",
    ),
    "checkpoint-signature": (
        "Der Protokollstand ist mit dem Schlüssel des Tresors unterschrieben.",
        "The log's state is signed with the vault's key.",
    ),
    "checkpoint-origin": (
        "Der unterschriebene Protokollstand ist der dieses Auftraggebers.",
        "The signed log state is this client's.",
    ),
    "statements": (
        "Die Begleitdateien (openings.json, proof.json) sagen nichts anderes als das Geprüfte.",
        "The accompanying files (openings.json, proof.json) say nothing but what was checked.",
    ),
    "report": (
        "Dieser Bericht (report.html) zeigt genau die geprüften Angaben.",
        "This report (report.html) shows exactly the checked facts.",
    ),
    "custody": (
        "Jeder aufgeführte Zugriff und jede Sperre steht im Protokoll des Auftraggebers.",
        "Every access and hold listed is in the client's log.",
    ),
    "report-pdf": (
        "Das PDF zeigt denselben Text und trägt genau die Dateien des Pakets als Anhänge.",
        "The PDF shows the same text and carries exactly the bundle's files as attachments.",
    ),
    "documents": (
        "Jedes beigefügte Dokument in Textform ist bitgenau das mit diesem Datensatz "
        "versiegelte und steht im Protokoll des Auftraggebers.",
        "Each Textform document enclosed is, bit for bit, the one sealed with this record, "
        "and is in the client's log.",
    ),
    "witnesses": (
        "Unabhängige Zeugen haben denselben Protokollstand gegengezeichnet: der Tresor kann "
        "sein Protokoll nicht nachträglich umschreiben, ohne dass es auffällt.",
        "Independent witnesses cosigned the same log state: the vault cannot rewrite its log "
        "afterwards without it showing.",
    ),
    "timestamp": (
        "Jeder Zeitstempel (RFC 3161) einer Zeitstempelstelle bestätigt, dass der "
        "Protokollstand – und damit dieser Eintrag – zur genannten Zeit bereits bestand.",
        "Each time-stamp (RFC 3161) of a Time-Stamping Authority confirms that the log's "
        "state – and with it this entry – already existed at the time given.",
    ),
}


def text(lang: str, key: str, /, **values: Any) -> str:
    """A sentence of the report in ``lang`` (German unless "en"), values filled in."""
    german, english = TEXTS[key]
    chosen = english if lang == "en" else german
    return chosen.format(**values) if values else chosen


# --- formatting ----------------------------------------------------------------------------

_DIGIT = re.compile(r"\d")


def mask_phone(phone: Any) -> str:
    """The number with all but its country code and last two digits hidden."""
    if not isinstance(phone, str) or not phone:
        return "—"
    digits = [i for i, c in enumerate(phone) if c.isdigit()]
    keep = set(digits[:2] + digits[-2:]) if len(digits) > 6 else set()
    return "".join(c if i in keep or not c.isdigit() else "•" for i, c in enumerate(phone))


def mmss(ms: Any) -> str:
    """Milliseconds into the recording as minutes:seconds (mm:ss), rounded down."""
    if not isinstance(ms, int) or isinstance(ms, bool) or ms < 0:
        return "—"
    seconds = ms // 1000
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def local_time(value: Any, zone: str, lang: str) -> str:
    """A sealed UTC time in the client's time zone, with its offset (unambiguous)."""
    if not isinstance(value, str):
        return "—"
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        local = at.astimezone(ZoneInfo(zone))
    except (ValueError, ZoneInfoNotFoundError):
        return value
    offset = local.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}"
    if lang == "en":
        return f"{local:%Y-%m-%d %H:%M:%S} ({offset})"
    return f"{local:%d.%m.%Y, %H:%M:%S} Uhr ({offset})"


def _span(lang: str, span: Any) -> str:
    if not (isinstance(span, list) and len(span) == 2):
        return text(lang, "not_marked")
    return text(lang, "span", start=mmss(span[0]), end=mmss(span[1]))


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _v(value: Any) -> str:
    """A sealed value as shown: a dash when absent."""
    return "—" if value is None or value == "" else str(value)


# --- sections: (title, rows) ---------------------------------------------------------------

Rows = list[tuple[str, str]]


def _called(f: DisputeFacts, ev: dict) -> Rows:
    t, z = f.language, f.time_zone
    return [
        (text(t, "phone"), mask_phone(_dict(ev.get("callee")).get("phone"))),
        (text(t, "recorded_at"), local_time(ev.get("recorded_at"), z, t)),
        (text(t, "client"), _v(ev.get("client"))),
        (text(t, "campaign"), _v(ev.get("campaign"))),
        (text(t, "order_ref"), _v(ev.get("order_ref"))),
        (text(t, "call"), f"{_v(ev.get('call_id'))} / {_v(ev.get('segment'))}"),
        (text(t, "agent"), _v(ev.get("agent_id"))),
    ]


def _identity(f: DisputeFacts, ev: dict) -> Rows:
    t, identity = f.language, _dict(ev.get("identity"))
    fields = ", ".join(_field(t, k) for k in sorted(_dict(identity.get("confirmed"))))
    method = identity.get("method")
    shown = "+".join(_field(t, k) for k in method.split("+")) if isinstance(method, str) else None
    return [
        (text(t, "method"), f"{_v(shown)} ({method})" if shown != method else _v(method)),
        (text(t, "confirmed_fields"), fields or text(t, "none")),
        (text(t, "where"), _span(t, identity.get("span_ms"))),
    ]


def _field(lang: str, name: str) -> str:
    """A confirmed field's name in words where the report knows it, else as sealed."""
    key = f"field.{name}"
    return text(lang, key) if key in TEXTS else name


def _offer(f: DisputeFacts, ev: dict) -> Rows:
    t, intent = f.language, _dict(ev.get("intent"))
    return [
        (text(t, "product"), _v(intent.get("product"))),
        (text(t, "price"), _v(intent.get("price"))),
        (text(t, "term"), _v(intent.get("term"))),
        (text(t, "statement"), _v(intent.get("statement"))),
        (text(t, "where"), _span(t, intent.get("span_ms"))),
    ]


def _consent(f: DisputeFacts, ev: dict) -> Rows:
    t, consent = f.language, _dict(ev.get("consent"))
    at = consent.get("recording_at_ms")
    rows = [
        (
            text(t, "consent_recording"),
            text(t, "at", at=mmss(at)) if at is not None else text(t, "not_marked"),
        )
    ]
    advertising = _dict(consent.get("advertising"))
    if advertising:
        value = text(
            t,
            "advertising_value",
            source=_v(advertising.get("source")),
            at=local_time(advertising.get("obtained_at"), f.time_zone, t),
            ref=_v(advertising.get("reference")),
        )
        rows.append((text(t, "advertising"), value))
    rows.append((text(t, "withdrawal"), _span(t, ev.get("withdrawal_notice_span_ms"))))
    return rows


def _documents(f: DisputeFacts) -> list[list[str]] | str:
    t = f.language
    rows = [
        [d.kind, d.media_type, local_time(d.sealed_at, f.time_zone, t), d.verdict]
        for d in f.documents
    ]
    present = {d.kind for d in f.documents}
    rows += [
        [kind, "—", "—", text(t, "doc_pending")]
        for kind in f.required_documents
        if kind not in present
    ]
    return rows or text(t, "none")


def _holds(f: DisputeFacts) -> Rows | str:
    t = f.language
    rows = []
    for event in f.custody:
        if not event.type.startswith("hold."):
            continue
        b = event.body
        kind = b.get("kind")
        value = text(
            t,
            "hold_value",
            kind=text(t, kind) if kind in ("dispute", "legal") else _v(kind),
            case=_v(b.get("case")),
            by=_v(b.get("by")),
            hold=_v(b.get("hold")),
        )
        when = local_time(event.time, f.time_zone, t)
        rows.append((f"{text(t, event.type)}, {when}", value))
    return rows or text(t, "none")


def _accesses(f: DisputeFacts) -> list[list[str]] | str:
    t = f.language
    rows = []
    for event in f.custody:
        if event.type != "evidence.accessed":
            continue
        b = event.body
        what = b.get("what")
        key = f"what.{what}"
        shown_what = text(t, key) if key in TEXTS else _v(what)
        code = b.get("reason")
        reason = text(t, f"reason.{code}") if f"reason.{code}" in TEXTS else code
        reason = " / ".join(str(v) for v in (reason, b.get("case")) if v) or "—"
        rows.append(
            [local_time(event.time, f.time_zone, t), _v(b.get("principal")), shown_what, reason]
        )
    return rows or text(t, "none")


def _timestamps(f: DisputeFacts) -> list[list[str]] | str:
    rows = [[s.tsa, local_time(s.time, f.time_zone, f.language), s.verdict] for s in f.timestamps]
    return rows or text(f.language, "not_present")


def _witnesses(f: DisputeFacts) -> list[list[str]] | str:
    rows = [[w.name, local_time(w.time, f.time_zone, f.language), w.verdict] for w in f.witnesses]
    return rows or text(f.language, "not_present")


def _recording(f: DisputeFacts, facts: dict, entry: dict) -> Rows:
    t, b = f.language, f.base
    body = _dict(entry.get("body"))
    duration = facts.get("duration_ms")
    return [
        (text(t, "audio_file"), b.audio_name),
        (text(t, "duration"), f"{mmss(duration)} ({_v(duration)} ms)"),
        (text(t, "format"), f"{_v(facts.get('media_type'))} / {_v(facts.get('codec'))}"),
        (text(t, "size"), text(t, "bytes", n=b.audio_size)),
        (text(t, "sealed_at"), local_time(entry.get("time"), f.time_zone, t)),
        (text(t, "retain_until"), local_time(body.get("retain_until"), f.time_zone, t)),
        (text(t, "made_at"), local_time(b.created_at, f.time_zone, t)),
        *_source(t, body.get("source")),
    ]


def _source(t: str, source: Any) -> Rows:
    """The dialer host's key that signed the clip (only a signed clip has a row)."""
    if not isinstance(source, dict):
        return []
    return [(text(t, "source_key"), text(t, "source_value", key=_v(source.get("key"))))]


def _results(f: DisputeFacts) -> list[list[str]]:
    t = f.language
    index = 1 if t == "en" else 0
    # a check over members the bundle does not have passed, but proved nothing: say so
    absent = {
        "timestamp": not f.timestamps,
        "witnesses": not f.witnesses,
        "documents": not f.documents and not f.required_documents,
    }
    return [
        [
            name,
            CHECK_TEXTS[name][index] if name in CHECK_TEXTS else meaning,
            text(t, "not_present" if absent.get(name) else "passed"),
        ]
        for name, meaning in f.base.checks.items()
    ]


def _technical(f: DisputeFacts, entry: dict) -> Rows:
    t, b = f.language, f.base
    commitments = _dict(_dict(entry.get("body")).get("commitments"))
    return [
        (text(t, "sha_audio"), b.audio_sha256),
        (text(t, "sha_evidence"), b.evidence_sha256),
        (text(t, "commit_clip"), _v(commitments.get("clip"))),
        (text(t, "commit_meta"), _v(commitments.get("meta"))),
        (text(t, "salt"), b.salt),
        (text(t, "leaf"), b.leaf_hash),
        (text(t, "log"), b.log),
        (text(t, "seq"), str(b.seq)),
        (text(t, "tree_size"), str(b.tree_size)),
        (text(t, "root"), b.root_hash),
    ]


# --- the page ------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 'DejaVu Sans', system-ui, sans-serif; max-width: 60em; margin: 2em auto;
       padding: 0 1em; color: #111; }
h1 { font-size: 1.45em; margin-bottom: .3em; }
h2 { font-size: 1.12em; margin-top: 1.6em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .2em .6em .2em 0; }
th { font-weight: bold; }
table.facts th { width: 16em; }
table.list th { border-bottom: 1px solid #ccc; }
table.list td:first-child { white-space: nowrap; }
.hash, pre { font-family: 'DejaVu Sans Mono', monospace; font-size: .85em;
             overflow-wrap: anywhere; }
pre { background: #f4f4f4; padding: .6em; white-space: pre-wrap; }
.note { background: #fff8dc; padding: .6em; border-left: 4px solid #d4a017; }
.ok { color: #0a6b2d; font-weight: bold; }
"""
#: the print version: A4, DejaVu (embedded, as PDF/A requires), no header or footer text
#: (the verifier compares every character the PDF shows with the report's)
_PRINT_STYLE = """
@page { size: A4; margin: 18mm 16mm 18mm 16mm; }
body { font: 9.5pt/1.38 'DejaVu Sans', sans-serif; margin: 0; max-width: none; padding: 0; }
h1 { font-size: 15pt; } h2 { font-size: 11.5pt; break-after: avoid; }
tr { break-inside: avoid; }
table.facts th { width: 14em; }
.hash, pre { font-size: 7.6pt; }
"""


def _facts_table(rows: Rows, hashes: bool = False) -> str:
    cls = " class='hash'" if hashes else ""
    cells = "".join(f"<tr><th>{_e(k)}</th><td{cls}>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table class='facts'>{cells}</table>"


def _list_table(head: list[str], rows: list[list[str]] | str) -> str:
    if isinstance(rows, str):
        return f"<p>{_e(rows)}</p>"
    heads = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='list'><tr>{heads}</tr>{body}</table>"


def _sections(f: DisputeFacts, *, for_print: bool) -> list[tuple[str, str]]:
    t, b = f.language, f.base
    doc = _dict(b.document)
    ev, facts = _dict(doc.get("evidence")), _dict(doc.get("audio"))
    entry = json.loads(b.entry)
    holds = _holds(f)
    if for_print:
        play = f"<p>{_e(text(t, 'audio_attached', name=b.audio_name))}</p>"
    else:
        # relative: it plays once the ZIP is unpacked, the report beside audio/
        play = (
            f"<p>{_e(text(t, 'audio_play'))}:</p>"
            f"<audio controls preload='none' src='{_e(b.audio_name)}'></audio>"
        )
    command = f'evidence-vault verify-bundle {BUNDLE_PLACEHOLDER} --key "$VAULT_KEY"'
    results = _list_table(
        [text(t, "r_check"), text(t, "r_proves"), text(t, "r_result")], _results(f)
    )
    sections = [
        (text(t, "s_called"), _facts_table(_called(f, ev))),
        (text(t, "s_identity"), _facts_table(_identity(f, ev))),
        (text(t, "s_offer"), _facts_table(_offer(f, ev))),
        (text(t, "s_consent"), _facts_table(_consent(f, ev))),
        (
            text(t, "s_documents"),
            _list_table(
                [text(t, k) for k in ("doc_kind", "doc_type", "doc_sealed", "doc_verdict")],
                _documents(f),
            ),
        ),
        (
            text(t, "s_case"),
            f"<p>{_e(holds)}</p>" if isinstance(holds, str) else _facts_table(holds),
        ),
        (
            text(t, "s_custody"),
            f"<p>{_e(text(t, 'custody_intro'))}</p>"
            + _list_table(
                [text(t, k) for k in ("c_time", "c_person", "c_what", "c_reason")], _accesses(f)
            ),
        ),
        (
            text(t, "s_timestamps"),
            _list_table([text(t, "tsa"), text(t, "time"), text(t, "verdict")], _timestamps(f)),
        ),
        (
            text(t, "s_witnesses"),
            _list_table([text(t, "witness"), text(t, "time"), text(t, "verdict")], _witnesses(f)),
        ),
        (text(t, "s_audio"), _facts_table(_recording(f, facts, entry)) + play),
        (text(t, "s_results"), f"<p>{_e(text(t, 'results_intro'))}</p>{results}"),
        (
            text(t, "s_repeat"),
            f"<p>{_e(text(t, 'repeat_1'))}</p>"
            f"<p>{_e(text(t, 'repeat_2', bundle=BUNDLE_PLACEHOLDER))}</p>"
            f"<pre>{_e(command)}</pre>"
            f"<p>{_e(text(t, 'repeat_3', key=b.verifier_key))}</p>",
        ),
        (text(t, "s_technical"), _facts_table(_technical(f, entry), hashes=True)),
        (text(t, "s_checkpoint"), f"<pre>{_e(b.checkpoint)}</pre>"),
    ]
    if for_print:
        names = "".join(f"<tr><td class='hash'>{_e(n)}</td></tr>" for n in f.attachments)
        sections.append(
            (
                text(t, "s_attachments"),
                f"<p>{_e(text(t, 'attachments_intro'))}</p><table class='list'>{names}</table>",
            )
        )
    return sections


def _page(f: DisputeFacts, *, for_print: bool) -> str:
    t, b = f.language, f.base
    lang = "en" if t == "en" else "de"
    style = _STYLE + (_PRINT_STYLE if for_print else "")
    body = "".join(
        f"<h2>{_e(title)}</h2>{content}" for title, content in _sections(f, for_print=for_print)
    )
    # even if a value slipped through unescaped, nothing could load or run; the audio
    # element may load the bundled clip, nothing else (a relative path)
    csp = "default-src 'none'; style-src 'unsafe-inline'; media-src 'self'"
    return (
        f"<!DOCTYPE html>\n<html lang='{lang}'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{csp}\">"
        f"<title>{_e(text(t, 'title'))} {_e(b.record_id)}</title><style>{style}</style>"
        "</head><body>"
        f"<h1>{_e(text(t, 'title'))} {_e(b.record_id)}</h1>"
        f"<p class='note'>{_e(text(t, 'intro'))}</p>"
        f"<p>{_e(text(t, 'times_note', zone=f.time_zone))}</p>"
        f"{body}</body></html>\n"
    )


def render_dispute_html(f: DisputeFacts) -> str:
    """report.html of a format 4 bundle: self-contained, every value escaped."""
    return _page(f, for_print=False)


def render_print_html(f: DisputeFacts) -> str:
    """The page report.pdf is printed from: the same facts, the recording attached."""
    return _page(f, for_print=True)


# --- what the PDF must show ----------------------------------------------------------------


class _Text(HTMLParser):
    """The characters a page shows, in order, with the section each one is in."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[tuple[str, str]] = []  # (section title, text)
        self._skip = 0
        self._in_h2 = False
        self._section = ""

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("style", "title"):
            self._skip += 1
        elif tag == "h2":
            self._in_h2, self._section = True, ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "title"):
            self._skip -= 1
        elif tag == "h2":
            self._in_h2 = False

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_h2:
            self._section += data
        self.chunks.append((self._section, data))


def expected_pdf_text(f: DisputeFacts) -> list[tuple[str, str]]:
    """The text report.pdf must show, as (section, characters without white space) pieces.

    White space is left out of the comparison: where a PDF breaks lines is layout, not fact.
    """
    parser = _Text()
    parser.feed(render_print_html(f))
    parser.close()
    return [(s, "".join(data.split())) for s, data in parser.chunks if data.strip()]
