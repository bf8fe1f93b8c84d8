"""The evidence record rules (vault/evidence.py), one test per rule, from DESIGN.md §3."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pydantic
import pytest
import rfc8785

from vault.errors import FieldError, InvalidEvidence
from vault.evidence import (
    EMPTY,
    MISSING,
    NO_TIMEZONE,
    NOT_A_REAL_DATE,
    NOT_JSON,
    NOT_MILLISECONDS,
    NOT_OBJECT,
    PHONE_NOT_INTERNATIONAL,
    SLUG_PATTERN,
    SLUG_RULE,
    SPAN_SHAPE,
    TIMESTAMP_FORMAT,
    Evidence,
    is_slug,
    normalise_phone,
    parse_evidence,
)

DURATION_MS = 90000
NOW = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)

PHONE = "+4915112345678"
NAME = "Max Mustermann"
DOB = "1980-01-31"
STATEMENT = "Ja, ich möchte den Vertrag so abschließen."
PII = (PHONE, PHONE.removeprefix("+"), "15112345678", NAME, DOB, STATEMENT)

# the example record of DESIGN.md §3
VALID: dict[str, Any] = {
    "client": "telco-de",
    "campaign": "fibre-upsell-2026q4",
    "call_id": "dialer-7f3a-000123",
    "segment": 1,
    "order_ref": "ORD-2026-000123",
    "agent_id": "agent-042",
    "recorded_at": "2026-11-22T09:14:03Z",
    "callee": {"phone": PHONE},
    "consent": {
        "recording_at_ms": 1200,
        "advertising": {
            "source": "web-optin",
            "obtained_at": "2026-10-01T12:00:00Z",
            "reference": "optin-5521",
        },
    },
    "identity": {
        "method": "name+date_of_birth+postcode",
        "confirmed": {"name": NAME, "date_of_birth": DOB, "postcode": "10115"},
        "span_ms": [5300, 21000],
    },
    "intent": {
        "product": "Fibre 250",
        "price": "39.99 EUR/month",
        "term": "24 months",
        "statement": STATEMENT,
        "span_ms": [60000, 72000],
    },
    "withdrawal_notice_span_ms": [72000, 81000],
}

DELETE = object()


def changed(**changes: Any) -> dict[str, Any]:
    """VALID with dotted paths (``__`` for ``.``) set to new values, or removed by DELETE."""
    doc = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        target = doc
        for part in parents:
            target = target[part]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return doc


def errors_of(doc: Any, *, duration_ms: int | None = DURATION_MS) -> list[tuple[str, str]]:
    with pytest.raises(InvalidEvidence) as info:
        parse_evidence(doc, duration_ms=duration_ms, now=NOW)
    return [(e.field, e.message) for e in info.value.errors]


def test_the_design_example_is_valid() -> None:
    ev = parse_evidence(json.dumps(VALID), duration_ms=DURATION_MS, now=NOW)
    assert ev.client == "telco-de"
    assert ev.segment == 1
    assert ev.callee.phone == PHONE
    assert ev.recorded_at == datetime(2026, 11, 22, 9, 14, 3, tzinfo=UTC)
    assert ev.consent.advertising is not None
    assert ev.consent.advertising.obtained_at.tzinfo == UTC
    assert ev.identity.confirmed["name"] == NAME
    assert ev.identity.span_ms == (5300, 21000)
    assert ev.intent.span_ms == (60000, 72000)
    assert ev.withdrawal_notice_span_ms == (72000, 81000)


def test_accepts_bytes_str_and_mapping_alike() -> None:
    from_bytes = parse_evidence(json.dumps(VALID).encode(), duration_ms=DURATION_MS, now=NOW)
    from_str = parse_evidence(json.dumps(VALID), duration_ms=DURATION_MS, now=NOW)
    from_dict = parse_evidence(VALID, duration_ms=DURATION_MS, now=NOW)
    assert from_bytes == from_str == from_dict


def test_optional_parts_may_be_absent_or_null() -> None:
    absent = changed(consent__advertising=DELETE, withdrawal_notice_span_ms=DELETE)
    null = changed(consent__advertising=None, withdrawal_notice_span_ms=None)
    for doc in (absent, null):
        ev = parse_evidence(doc, duration_ms=DURATION_MS, now=NOW)
        assert ev.consent.advertising is None
        assert ev.withdrawal_notice_span_ms is None


MUST_BE_INT = "must be an integer"
MUST_BE_STR = "must be a string"
MUST_BE_OBJECT = "must be a JSON object"
BEFORE_IDENTITY = (
    "consent to recording must come before the identity confirmation "
    "(consent at {c} ms, identity confirmation starts at 5300 ms)"
)
BEFORE_INTENT = (
    "consent to recording must come before the declaration of intent "
    "(consent at {c} ms, declaration of intent starts at 60000 ms)"
)

RULES = [
    # required fields
    ("missing top-level", changed(order_ref=DELETE), [("order_ref", MISSING)]),
    ("missing part", changed(intent=DELETE), [("intent", MISSING)]),
    ("missing nested", changed(callee__phone=DELETE), [("callee.phone", MISSING)]),
    ("missing statement", changed(intent__statement=DELETE), [("intent.statement", MISSING)]),
    ("missing span", changed(identity__span_ms=DELETE), [("identity.span_ms", MISSING)]),
    # wrong types
    ("segment as string", changed(segment="1"), [("segment", MUST_BE_INT)]),
    ("segment as float", changed(segment=1.0), [("segment", MUST_BE_INT)]),
    ("segment as bool", changed(segment=True), [("segment", MUST_BE_INT)]),
    ("client as number", changed(client=7), [("client", MUST_BE_STR)]),
    ("callee not object", changed(callee="x"), [("callee", MUST_BE_OBJECT)]),
    (
        "confirmed as list",
        changed(identity__confirmed=[]),
        [("identity.confirmed", MUST_BE_OBJECT)],
    ),
    (
        "confirmed value not string",
        changed(identity__confirmed__postcode=10115),
        [("identity.confirmed.postcode", MUST_BE_STR)],
    ),
    (
        "recording_at_ms as string",
        changed(consent__recording_at_ms="1200"),
        [("consent.recording_at_ms", NOT_MILLISECONDS)],
    ),
    # unknown fields
    (
        "unknown top-level (typo)",
        changed(order_reference="ORD-1"),
        [("order_reference", "unknown field (did you mean 'order_ref'?)")],
    ),
    ("unknown top-level", changed(colour="blue"), [("colour", "unknown field")]),
    (
        "unknown nested",
        changed(intent__produkt="Fibre 250"),
        [("intent.produkt", "unknown field (did you mean 'product'?)")],
    ),
    # identifiers
    ("empty call_id", changed(call_id=""), [("call_id", EMPTY)]),
    (
        "order_ref too long",
        changed(order_ref="x" * 129),
        [("order_ref", "must be at most 128 characters (it has 129)")],
    ),
    (
        "control character",
        changed(agent_id="agent\x00042"),
        [("agent_id", "must not contain control characters")],
    ),
    (
        "non-printable character",
        changed(call_id="dialer\u200b7f3a"),
        [("call_id", "must contain only printable characters")],
    ),
    (
        "surrounding whitespace",
        changed(order_ref="ORD-2026-000123 "),
        [("order_ref", "must not start or end with whitespace")],
    ),
    (
        "empty advertising source",
        changed(consent__advertising__source=""),
        [("consent.advertising.source", EMPTY)],
    ),
    ("client upper case", changed(client="Telco-DE"), [("client", SLUG_RULE)]),
    ("campaign leading dash", changed(campaign="-fibre"), [("campaign", SLUG_RULE)]),
    ("campaign too long for a slug", changed(campaign="a" * 65), [("campaign", SLUG_RULE)]),
    (
        "client trailing newline",
        changed(client="telco-de\n"),
        [("client", "must not contain control characters")],
    ),
    ("empty client", changed(client=""), [("client", EMPTY)]),
    # segment
    ("segment zero", changed(segment=0), [("segment", "must be at least 1")]),
    ("segment unsafe", changed(segment=2**53), [("segment", "must be at most 9007199254740991")]),
    # phone
    (
        "national phone",
        changed(callee__phone="015112345678"),
        [("callee.phone", PHONE_NOT_INTERNATIONAL)],
    ),
    (
        "phone with letters",
        changed(callee__phone="+49 151 FLOWERS"),
        [
            (
                "callee.phone",
                "must contain only digits after the +, grouped by spaces, '-', '.', '/' or ()",
            )
        ],
    ),
    (
        "invalid phone",
        changed(callee__phone="+49151123"),
        [
            (
                "callee.phone",
                "is not a valid phone number (check the country code and the number of digits)",
            )
        ],
    ),
    (
        "unknown country code",
        changed(callee__phone="+999 1234567"),
        [("callee.phone", "starts with an unknown country code")],
    ),
    # timestamps
    (
        "recorded_at not a real date",
        changed(recorded_at="2026-02-30T09:14:03Z"),
        [("recorded_at", NOT_A_REAL_DATE)],
    ),
    (
        "recorded_at not a real time",
        changed(recorded_at="2026-11-22T24:14:03Z"),
        [("recorded_at", "is not a real time of day")],
    ),
    (
        "recorded_at without zone",
        changed(recorded_at="2026-11-22T09:14:03"),
        [("recorded_at", NO_TIMEZONE)],
    ),
    (
        "recorded_at other format",
        changed(recorded_at="22.11.2026 09:14"),
        [("recorded_at", TIMESTAMP_FORMAT)],
    ),
    (
        "recorded_at date only",
        changed(recorded_at="2026-11-22"),
        [("recorded_at", TIMESTAMP_FORMAT)],
    ),
    ("recorded_at as number", changed(recorded_at=1795424043), [("recorded_at", TIMESTAMP_FORMAT)]),
    (
        "recorded_at bad offset",
        changed(recorded_at="2026-11-22T09:14:03+24:00"),
        [("recorded_at", "has an invalid UTC offset")],
    ),
    (
        "recorded_at out of range",
        changed(recorded_at="0001-01-01T00:00:00+01:00"),
        [("recorded_at", "is out of the supported range of dates")],
    ),
    (
        "recorded_at in the future",
        changed(recorded_at="2026-11-22T10:05:01Z"),
        [
            (
                "recorded_at",
                "is more than 5 minutes in the future; check the clock of the recording host",
            )
        ],
    ),
    (
        "obtained_at not a real date",
        changed(consent__advertising__obtained_at="2026-09-31T12:00:00Z"),
        [("consent.advertising.obtained_at", NOT_A_REAL_DATE)],
    ),
    (
        "obtained_at after recorded_at",
        changed(consent__advertising__obtained_at="2026-11-22T09:14:04Z"),
        [
            (
                "consent.advertising.obtained_at",
                "must not be after recorded_at: advertising consent must exist before the call",
            )
        ],
    ),
    # date of birth
    (
        "dob not a real date",
        changed(identity__confirmed__date_of_birth="1980-02-30"),
        [("identity.confirmed.date_of_birth", NOT_A_REAL_DATE)],
    ),
    (
        "dob other format",
        changed(identity__confirmed__date_of_birth="31.01.1980"),
        [("identity.confirmed.date_of_birth", "must be a date in the form YYYY-MM-DD")],
    ),
    (
        "dob in the future",
        changed(identity__confirmed__date_of_birth="2026-11-23"),
        [("identity.confirmed.date_of_birth", "must not be in the future")],
    ),
    (
        "dob before 1900",
        changed(identity__confirmed__date_of_birth="1899-12-31"),
        [("identity.confirmed.date_of_birth", "must not be before 1900-01-01")],
    ),
    # confirmed identity
    (
        "nothing confirmed",
        changed(identity__confirmed={}),
        [
            (
                "identity.confirmed",
                "must not be empty: name what the callee confirmed, e.g. name and date_of_birth",
            )
        ],
    ),
    (
        "empty confirmed value",
        changed(identity__confirmed__name=""),
        [("identity.confirmed.name", EMPTY)],
    ),
    (
        "empty confirmed key",
        changed(identity__confirmed={"": "x", "name": NAME}),
        [("identity.confirmed", "every key must be a name of 1-128 printable characters")],
    ),
    # span shape
    ("span with one number", changed(identity__span_ms=[5300]), [("identity.span_ms", SPAN_SHAPE)]),
    ("span as string", changed(intent__span_ms="60000-72000"), [("intent.span_ms", SPAN_SHAPE)]),
    (
        "span end not int",
        changed(intent__span_ms=[60000, "72000"]),
        [("intent.span_ms[1]", NOT_MILLISECONDS)],
    ),
    (
        "span end float",
        changed(intent__span_ms=[60000, 72000.5]),
        [("intent.span_ms[1]", NOT_MILLISECONDS)],
    ),
    (
        "span start negative",
        changed(withdrawal_notice_span_ms=[-1, 81000]),
        [("withdrawal_notice_span_ms[0]", "must not be negative")],
    ),
    (
        "span runs backwards",
        changed(intent__span_ms=[72000, 60000]),
        [("intent.span_ms", "span runs backwards (starts at 72000 ms, ends at 60000 ms)")],
    ),
    (
        "span is empty",
        changed(intent__span_ms=[60000, 60000]),
        [("intent.span_ms", "span is empty (starts and ends at 60000 ms)")],
    ),
    # spans inside the clip
    (
        "intent span after clip",
        changed(intent__span_ms=[60000, 95000]),
        [("intent.span_ms[1]", "span ends at 95000 ms, after the end of the clip at 90000 ms")],
    ),
    (
        "withdrawal span after clip",
        changed(withdrawal_notice_span_ms=[72000, 90001]),
        [
            (
                "withdrawal_notice_span_ms[1]",
                "span ends at 90001 ms, after the end of the clip at 90000 ms",
            )
        ],
    ),
    (
        "consent after clip",
        changed(consent__recording_at_ms=90000),
        [
            (
                "consent.recording_at_ms",
                "consent to recording at 90000 ms is at or after the end of the clip at 90000 ms",
            ),
            ("consent.recording_at_ms", BEFORE_IDENTITY.format(c=90000)),
            ("consent.recording_at_ms", BEFORE_INTENT.format(c=90000)),
        ],
    ),
    # consent before identity and intent
    (
        "consent negative",
        changed(consent__recording_at_ms=-5),
        [("consent.recording_at_ms", "must not be negative")],
    ),
    (
        "consent after identity start",
        changed(consent__recording_at_ms=6000),
        [("consent.recording_at_ms", BEFORE_IDENTITY.format(c=6000))],
    ),
    (
        "consent after both starts",
        changed(consent__recording_at_ms=61000),
        [
            ("consent.recording_at_ms", BEFORE_IDENTITY.format(c=61000)),
            ("consent.recording_at_ms", BEFORE_INTENT.format(c=61000)),
        ],
    ),
    # text fields
    ("empty product", changed(intent__product=""), [("intent.product", EMPTY)]),
    ("blank term", changed(intent__term="   "), [("intent.term", EMPTY)]),
    ("empty method", changed(identity__method=""), [("identity.method", EMPTY)]),
    (
        "price too long",
        changed(intent__price="9" * 2001),
        [("intent.price", "must be at most 2000 characters (it has 2001)")],
    ),
    (
        "control character in text",
        changed(intent__statement="Ja\x1b[2J"),
        [
            (
                "intent.statement",
                "must not contain control characters other than tab and line breaks",
            )
        ],
    ),
    # the document itself
    ("not JSON", b"{not json", [("$", NOT_JSON)]),
    ("not UTF-8", b"\xff\xfe\xfa", [("$", NOT_JSON)]),
    ("NaN is not JSON", '{"segment": NaN}', [("$", NOT_JSON)]),
    ("JSON array", "[1, 2]", [("$", NOT_OBJECT)]),
    ("not a mapping", 42, [("$", NOT_OBJECT)]),
    (
        "duplicate key",
        '{"segment": 1, "segment": 2}',
        [("$", "the document repeats the field 'segment'")],
    ),
]


@pytest.mark.parametrize(("doc", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_each_rule_has_its_own_error(doc: Any, expected: list[tuple[str, str]]) -> None:
    assert errors_of(doc) == expected


@pytest.mark.parametrize(
    "doc",
    [
        changed(consent__recording_at_ms=5300),  # consent exactly at the identity start
        changed(recorded_at="2026-11-22T10:05:00Z"),  # exactly 5 minutes ahead
        changed(consent__advertising__obtained_at="2026-11-22T09:14:03Z"),  # same instant
        changed(identity__confirmed__date_of_birth="1900-01-01"),
        changed(identity__confirmed__date_of_birth="2026-11-22"),  # today
        changed(intent__span_ms=[60000, 90000]),  # ends exactly at the end of the clip
        # identity need not precede intent (DESIGN: consent before both, nothing more)
        changed(identity__span_ms=[73000, 80000], intent__span_ms=[60000, 72000]),
        changed(recorded_at="2026-11-22t09:14:03z"),  # RFC 3339 allows lower case
        changed(segment=2**53 - 1),
        changed(intent__statement="Ja,\r\n\tich möchte."),  # transcripts may wrap lines
    ],
    ids=[
        "consent-at-identity-start",
        "five-minutes-ahead",
        "optin-at-recording",
        "dob-1900",
        "dob-today",
        "span-to-clip-end",
        "identity-after-intent",
        "lower-case-t-z",
        "largest-segment",
        "line-breaks-in-text",
    ],
)
def test_boundaries_that_are_allowed(doc: dict[str, Any]) -> None:
    parse_evidence(doc, duration_ms=DURATION_MS, now=NOW)


def test_spans_beyond_any_length_pass_without_a_duration() -> None:
    doc = changed(intent__span_ms=[60000, 10**9])
    assert parse_evidence(doc, now=NOW).intent.span_ms == (60000, 10**9)


def test_every_broken_rule_is_reported_together() -> None:
    doc = changed(
        client="Telco DE",
        segment=0,
        callee__phone="015112345678",
        identiy={"method": "x"},
        consent__recording_at_ms=6000,
        identity__confirmed__date_of_birth="1980-02-30",
        identity__span_ms=[5300, 95000],
        intent__span_ms=[72000, 60000],
        intent__statement="",
        recorded_at="2026-11-22T09:14:03",
        withdrawal_notice_span_ms=["a", -1],
    )
    assert sorted(errors_of(doc)) == sorted(
        [
            ("client", SLUG_RULE),
            ("segment", "must be at least 1"),
            ("recorded_at", NO_TIMEZONE),
            ("callee.phone", PHONE_NOT_INTERNATIONAL),
            ("identiy", "unknown field (did you mean 'identity'?)"),
            ("identity.confirmed.date_of_birth", NOT_A_REAL_DATE),
            ("identity.span_ms[1]", "span ends at 95000 ms, after the end of the clip at 90000 ms"),
            ("intent.statement", EMPTY),
            ("intent.span_ms", "span runs backwards (starts at 72000 ms, ends at 60000 ms)"),
            ("withdrawal_notice_span_ms[0]", NOT_MILLISECONDS),
            ("withdrawal_notice_span_ms[1]", "must not be negative"),
            ("consent.recording_at_ms", BEFORE_IDENTITY.format(c=6000)),
        ]
    )


def test_a_broken_field_is_not_reported_again_by_the_rules_that_use_it() -> None:
    # an unusable span or consent time cannot be compared: one error each, not two
    doc = changed(consent__recording_at_ms="late", intent__span_ms=[60000])
    assert errors_of(doc) == [
        ("consent.recording_at_ms", NOT_MILLISECONDS),
        ("intent.span_ms", SPAN_SHAPE),
    ]


PII_BREAKERS = {
    "phone national": changed(callee__phone=PHONE.removeprefix("+49").join(["0", ""])),
    "phone invalid": changed(callee__phone=PHONE + "99"),
    "phone letters": changed(callee__phone=PHONE + " ext. 5"),
    "phone as number": changed(callee__phone=int(PHONE.removeprefix("+"))),
    "phone as list": changed(callee__phone=[PHONE]),
    "phone at top level": changed(phone=PHONE),
    "name too long": changed(identity__confirmed__name=NAME * 200),
    "name as list": changed(identity__confirmed__name=[NAME]),
    "name with control char": changed(identity__confirmed__name=NAME + "\x00"),
    "dob with time": changed(identity__confirmed__date_of_birth=DOB + "T00:00:00Z"),
    "dob with spaces": changed(identity__confirmed__date_of_birth=f" {DOB} "),
    "dob as list": changed(identity__confirmed__date_of_birth=[DOB]),
    "statement too long": changed(intent__statement=STATEMENT * 100),
    "statement as object": changed(intent__statement={"text": STATEMENT}),
    "pii in unknown fields": changed(intent__statment=STATEMENT, identity__name=NAME),
    "confirmed as string": changed(identity__confirmed=f"{NAME}, {DOB}"),
    "pii where ids go": changed(call_id=PHONE + "\n", order_ref=NAME * 10, agent_id=DOB * 20),
    "pii where times go": changed(recorded_at=DOB, consent__advertising__obtained_at=PHONE),
    "pii where spans go": changed(intent__span_ms=[STATEMENT, PHONE]),
    "whole document broken": json.dumps(VALID)[:-3].encode(),
}


@pytest.mark.parametrize("doc", list(PII_BREAKERS.values()), ids=list(PII_BREAKERS))
def test_no_error_echoes_pii(doc: Any) -> None:
    with pytest.raises(InvalidEvidence) as info:
        parse_evidence(doc, duration_ms=DURATION_MS, now=NOW)
    exc = info.value
    assert exc.errors
    rendered = "\n".join([str(exc), repr(exc), json.dumps(exc.to_dict(), ensure_ascii=False)])
    for e in exc.errors:
        rendered += f"\n{e.field}\n{e.message}"
    for secret in PII:
        assert secret not in rendered
    # pydantic's error (which quotes the input) is not chained to ours
    assert exc.__context__ is None
    assert exc.__cause__ is None


def test_the_model_repr_hides_pii() -> None:
    text = repr(parse_evidence(VALID, duration_ms=DURATION_MS, now=NOW))
    for secret in PII:
        assert secret not in text


def test_pydantic_messages_never_pass_through() -> None:
    doc = changed(segment="1", callee=[], intent__term=None, extra=1)
    for _, message in errors_of(doc):
        assert "Input should" not in message
        assert "input_value" not in message
        assert "Extra inputs" not in message


# --- normalise_phone ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+4915112345678", "+4915112345678"),
        ("+49 151 1234 5678", "+4915112345678"),
        ("+49-151-12345678", "+4915112345678"),
        ("+49 (0)151 / 123.456.78", "+4915112345678"),
        ("  +44 20 7946 0958 ", "+442079460958"),
        ("+1 (202) 555-0173", "+12025550173"),
    ],
)
def test_normalise_phone_returns_e164(raw: str, e164: str) -> None:
    assert normalise_phone(raw) == e164


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("015112345678", PHONE_NOT_INTERNATIONAL),
        ("0049 151 12345678", PHONE_NOT_INTERNATIONAL),
        ("", PHONE_NOT_INTERNATIONAL),
        (
            "+49 151 1234567X",
            "must contain only digits after the +, grouped by spaces, '-', '.', '/' or ()",
        ),
        ("+", "must contain only digits after the +, grouped by spaces, '-', '.', '/' or ()"),
        (
            "+49151123",
            "is not a valid phone number (check the country code and the number of digits)",
        ),
        ("+999 1234567", "starts with an unknown country code"),
    ],
)
def test_normalise_phone_rejects(raw: str, message: str) -> None:
    with pytest.raises(InvalidEvidence) as info:
        normalise_phone(raw)
    assert info.value.errors == [FieldError("callee.phone", message)]
    assert info.value.__context__ is None


def test_national_number_error_says_how_to_fix_it() -> None:
    with pytest.raises(InvalidEvidence) as info:
        normalise_phone("0151 12345678")
    assert "+<country code>" in info.value.errors[0].message
    assert info.value.hint is not None
    assert "country code" in info.value.hint


def test_phone_is_stored_normalised() -> None:
    ev = parse_evidence(
        changed(callee__phone="+49 151 1234-5678"), duration_ms=DURATION_MS, now=NOW
    )
    assert ev.callee.phone == PHONE
    assert ev.to_document()["callee"]["phone"] == PHONE


# --- normal form ----------------------------------------------------------------------


def test_to_document_of_the_design_example_is_the_example() -> None:
    assert parse_evidence(VALID, duration_ms=DURATION_MS, now=NOW).to_document() == VALID


@pytest.mark.parametrize(
    "doc",
    [
        VALID,
        changed(consent__advertising=DELETE, withdrawal_notice_span_ms=DELETE),
        changed(recorded_at="2026-11-22T10:14:03.250+01:00", callee__phone="+49 151 12345678"),
        changed(recorded_at="2026-11-22T09:14:03.123456789Z"),
    ],
    ids=["example", "minimal", "offset-and-spaced-phone", "nanoseconds"],
)
def test_to_document_round_trips(doc: dict[str, Any]) -> None:
    ev = parse_evidence(doc, duration_ms=DURATION_MS, now=NOW)
    document = ev.to_document()
    canonical = rfc8785.dumps(document)
    again = parse_evidence(canonical, duration_ms=DURATION_MS, now=NOW)
    assert again == ev
    assert again.to_document() == document
    assert rfc8785.dumps(again.to_document()) == canonical


def test_to_document_normalises_times_to_utc_z() -> None:
    doc = changed(
        recorded_at="2026-11-22T10:14:03.250+01:00",
        consent__advertising__obtained_at="2026-10-01T08:00:00-04:00",
    )
    document = parse_evidence(doc, duration_ms=DURATION_MS, now=NOW).to_document()
    assert document["recorded_at"] == "2026-11-22T09:14:03.25Z"
    assert document["consent"]["advertising"]["obtained_at"] == "2026-10-01T12:00:00Z"


def test_aware_datetimes_from_python_callers_are_accepted() -> None:
    cet = timezone(timedelta(hours=1))
    doc = changed(recorded_at=datetime(2026, 11, 22, 10, 14, 3, tzinfo=cet))
    ev = parse_evidence(doc, duration_ms=DURATION_MS, now=NOW)
    assert ev.recorded_at == datetime(2026, 11, 22, 9, 14, 3, tzinfo=UTC)
    naive = changed(recorded_at=datetime(2026, 11, 22, 9, 14, 3))
    assert errors_of(naive) == [("recorded_at", NO_TIMEZONE)]


def test_public_index_holds_only_search_fields() -> None:
    index = parse_evidence(VALID, duration_ms=DURATION_MS, now=NOW).public_index()
    assert index == {
        "client": "telco-de",
        "campaign": "fibre-upsell-2026q4",
        "call_id": "dialer-7f3a-000123",
        "segment": 1,
        "order_ref": "ORD-2026-000123",
        "agent_id": "agent-042",
        "recorded_at": "2026-11-22T09:14:03Z",
    }
    text = json.dumps(index, ensure_ascii=False)
    for secret in (*PII, "10115", "Fibre 250"):
        assert secret not in text


def test_evidence_is_frozen() -> None:
    ev = parse_evidence(VALID, duration_ms=DURATION_MS, now=NOW)
    with pytest.raises(pydantic.ValidationError):
        ev.segment = 2  # type: ignore[misc]
    assert isinstance(ev, Evidence)


# --- slugs and arguments --------------------------------------------------------------


@pytest.mark.parametrize("name", ["telco-de", "a", "fibre-upsell-2026q4", "x.y_z", "0" * 64])
def test_slugs(name: str) -> None:
    assert is_slug(name)


@pytest.mark.parametrize(
    "name", ["", "Telco", "-a", ".a", "a b", "a/b", "a" * 65, "acme\n", "tëlco", 7, None]
)
def test_not_slugs(name: object) -> None:
    assert not is_slug(name)


def test_slug_pattern_has_no_trailing_newline_hole() -> None:
    assert SLUG_PATTERN.match("acme") is not None
    assert SLUG_PATTERN.match("acme\n") is None


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse_evidence(VALID, now=datetime(2026, 11, 22, 10, 0))


@pytest.mark.parametrize("duration_ms", [0, -1, 1.5, True])
def test_duration_must_be_a_positive_integer(duration_ms: Any) -> None:
    with pytest.raises(ValueError, match="duration_ms"):
        parse_evidence(VALID, duration_ms=duration_ms, now=NOW)


def test_now_defaults_to_the_system_clock() -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert errors_of(changed(recorded_at=future), duration_ms=None) == [
        (
            "recorded_at",
            "is more than 5 minutes in the future; check the clock of the recording host",
        )
    ]
