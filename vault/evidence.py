"""The evidence record: its model, its validation rules and its normal form (pure, no I/O).

One :class:`Evidence` describes one recorded order segment (DESIGN.md §3). Uploads reach
the vault as JSON; :func:`parse_evidence` turns that into a frozen, normalised model or
raises :class:`~vault.errors.InvalidEvidence` listing *every* broken rule at once, so a
dialer fixes its upload in one round trip instead of one error at a time.

How validation is split, and why:

* pydantic checks the shape (required, unknown and mistyped fields) and the rules of a
  single value (slugs, identifiers, phone, spans, timestamps, text lengths);
* :func:`_context_errors` checks the rules that need more than one value or the caller's
  context (the clip's duration, the clock): consent before identity and intent, spans
  inside the clip, nothing in the future. It reads the raw document, so these rules are
  reported even when an unrelated field is broken (pydantic's model validators would
  only run once every field is valid).

Messages never contain a value taken from the document, only field names and numbers
(spans, durations, lengths): the document holds PII (phone, name, date of birth, the
statement), and errors end up in logs, HTTP responses and the dialer's screen. pydantic's
own messages and ``input_value`` never leave this module, and :class:`InvalidEvidence` is
raised outside any ``except`` block so it does not carry the pydantic error as context.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated, Any, NoReturn, TypeVar

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
)

from vault import inputs
from vault.errors import FieldError, InvalidEvidence
from vault.identifiers import SLUG

__all__ = [
    "MAX_ID_LENGTH",
    "MAX_TEXT_LENGTH",
    "SLUG_PATTERN",
    "SLUG_RULE",
    "AdvertisingConsent",
    "Callee",
    "Consent",
    "Evidence",
    "Identity",
    "Intent",
    "is_slug",
    "normalise_phone",
    "parse_evidence",
]

#: the rule of client and campaign names (vault.identifiers.SLUG), anchored \A…\Z
SLUG_PATTERN = SLUG.regex
SLUG_RULE = "must be 1-64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit"

MAX_ID_LENGTH = 128
MAX_TEXT_LENGTH = 2000
# Integers beyond 2**53 - 1 have no exact JSON number in I-JSON / RFC 8785, so a record
# holding one could not be hashed canonically; refuse them at the door.
MAX_SAFE_INT = 2**53 - 1
# Dialer clocks drift; a recording a few minutes "ahead" is drift, not fraud.
FUTURE_TOLERANCE = timedelta(minutes=5)
EARLIEST_BIRTH_DATE = date(1900, 1, 1)

_SPAN_FIELDS = ("identity.span_ms", "intent.span_ms", "withdrawal_notice_span_ms")
_DOB_FIELD = "identity.confirmed.date_of_birth"

# Messages shared by several rules (tests compare them exactly).
NOT_JSON = "the document is not valid JSON"
NOT_OBJECT = "the document must be a JSON object"
MISSING = "required field is missing"
UNKNOWN_FIELD = "unknown field"
EMPTY = "must not be empty"
NOT_A_REAL_DATE = "is not a real date"
TIMESTAMP_FORMAT = "must be an RFC 3339 date-time such as 2026-11-22T09:14:03Z"
NO_TIMEZONE = "must have a timezone: end with Z or an offset such as +01:00"
SPAN_SHAPE = "must be a list of two integers [start, end] in milliseconds"
NOT_MILLISECONDS = "must be an integer number of milliseconds"
PHONE_NOT_INTERNATIONAL = (
    "must start with + and the country code (international form: +<country code> <number>)"
)

# pydantic error types we expect, in our words; anything else gets _FALLBACK.
_STRUCTURE_MESSAGES = {
    "missing": MISSING,
    "string_type": "must be a string",
    "int_type": "must be an integer",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
}
_FALLBACK = "is not valid"


# --- rules of a single value ----------------------------------------------------------


class _Invalid(ValueError):
    """Broken rules of one value, as ``(path suffix, message)`` pairs.

    The suffix (``"[1]"``, ``".date_of_birth"``) points below the field being validated,
    which pydantic cannot express for errors raised inside one validator.
    """

    def __init__(self, *problems: tuple[str, str]) -> None:
        super().__init__("; ".join(message for _, message in problems))
        self.problems = problems


def _fail(message: str, at: str = "") -> NoReturn:
    raise _Invalid((at, message))


def is_slug(s: object) -> bool:
    """Whether ``s`` is a valid client or campaign name (:data:`vault.identifiers.SLUG`)."""
    return SLUG.matches(s)


def _identifier_problem(value: str) -> str | None:
    if not value:
        return EMPTY
    if len(value) > MAX_ID_LENGTH:
        return f"must be at most {MAX_ID_LENGTH} characters (it has {len(value)})"
    if problem := inputs.text_problem(value):
        return problem
    if not value.isprintable():
        return "must contain only printable characters"
    # "ORD-1 " and "ORD-1" would be two different order references to a search
    if value != value.strip():
        return "must not start or end with whitespace"
    return None


def _identifier(value: str) -> str:
    if problem := _identifier_problem(value):
        _fail(problem)
    return value


def _slug(value: str) -> str:
    _identifier(value)
    if not is_slug(value):
        _fail(SLUG_RULE)
    return value


def _text_problem(value: str) -> str | None:
    if not value.strip():
        return EMPTY
    if len(value) > MAX_TEXT_LENGTH:
        return f"must be at most {MAX_TEXT_LENGTH} characters (it has {len(value)})"
    # a transcript may wrap lines, but NUL, ESC & co. are transport garbage (and NUL
    # cannot even be stored in a PostgreSQL text column); a lone surrogate cannot be
    # encoded at all (vault.inputs)
    return inputs.text_problem(value, multiline=True)


def _text(value: str) -> str:
    if problem := _text_problem(value):
        _fail(problem)
    return value


def _segment(value: int) -> int:
    if value < 1:
        _fail("must be at least 1")
    if value > MAX_SAFE_INT:
        _fail(f"must be at most {MAX_SAFE_INT}")
    return value


def _milliseconds_problem(value: object) -> str | None:
    # bool is an int in Python, but `true` is no offset into a recording
    if isinstance(value, bool) or not isinstance(value, int):
        return NOT_MILLISECONDS
    if value < 0:
        return "must not be negative"
    if value > MAX_SAFE_INT:
        return f"must be at most {MAX_SAFE_INT}"
    return None


def _milliseconds(value: object) -> int:
    if problem := _milliseconds_problem(value):
        _fail(problem)
    assert isinstance(value, int)
    return value


def _span(value: object) -> tuple[int, int]:
    """``[start, end]`` in milliseconds from the start of the clip, ``start < end``."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        _fail(SPAN_SHAPE)
    problems = [(f"[{i}]", p) for i, v in enumerate(value) if (p := _milliseconds_problem(v))]
    if problems:
        raise _Invalid(*problems)
    start, end = value
    if start > end:
        _fail(f"span runs backwards (starts at {start} ms, ends at {end} ms)")
    if start == end:
        _fail(f"span is empty (starts and ends at {start} ms)")
    return start, end


_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]{1,9}))?([Zz]|[+-][0-9]{2}:[0-9]{2})?"
)


def _utc_offset(text: str) -> timezone:
    if text in ("Z", "z"):
        return UTC
    hours, minutes = int(text[1:3]), int(text[4:6])
    if hours > 23 or minutes > 59:
        _fail("has an invalid UTC offset")
    sign = -1 if text[0] == "-" else 1
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _timestamp(value: object) -> datetime:
    """An RFC 3339 date-time with ``Z`` or an offset, as an aware UTC datetime.

    A local time without an offset names a different instant in every time zone, which
    is no time of recording at all; hence no default zone. Digits beyond microseconds
    are dropped (Python's resolution; far below anything a call recording can tell).
    """
    if isinstance(value, datetime):  # Python callers may hand over datetimes directly
        if value.utcoffset() is None:
            _fail(NO_TIMEZONE)
        return value.astimezone(UTC)
    if not isinstance(value, str) or not (m := _RFC3339.fullmatch(value)):
        _fail(TIMESTAMP_FORMAT)
    year, month, day, hour, minute, second, fraction, offset = m.groups()
    if offset is None:
        _fail(NO_TIMEZONE)
    try:
        day_ = date(int(year), int(month), int(day))
    except ValueError:
        _fail(NOT_A_REAL_DATE)
    # no leap seconds: Python cannot represent 23:59:60
    if int(hour) > 23 or int(minute) > 59 or int(second) > 59:
        _fail("is not a real time of day")
    local = datetime(
        day_.year,
        day_.month,
        day_.day,
        int(hour),
        int(minute),
        int(second),
        int((fraction or "").ljust(6, "0")[:6]),
        tzinfo=_utc_offset(offset),
    )
    try:
        return local.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 lies before year 1 in UTC
        _fail("is out of the supported range of dates")


def _format_timestamp(ts: datetime) -> str:
    """One spelling per instant: UTC, ``Z``, fraction only when non-zero, no trailing 0s."""
    ts = ts.astimezone(UTC)
    text = ts.replace(tzinfo=None).isoformat(timespec="seconds")
    if ts.microsecond:
        text += "." + f"{ts.microsecond:06d}".rstrip("0")
    return text + "Z"


_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


def _birth_date(value: str, today: date) -> date:
    if not (m := _ISO_DATE.fullmatch(value)):
        _fail("must be a date in the form YYYY-MM-DD")
    try:
        born = date(int(m[1]), int(m[2]), int(m[3]))
    except ValueError:
        _fail(NOT_A_REAL_DATE)
    if born > today:
        _fail("must not be in the future")
    if born < EARLIEST_BIRTH_DATE:
        _fail(f"must not be before {EARLIEST_BIRTH_DATE.isoformat()}")
    return born


# digits after the "+", optionally grouped the ways people write numbers; no letters
# (phonenumbers would read "+1 800 FLOWERS" or drop an "ext. 5" without a word)
_PHONE_CHARS = re.compile(r"\+[0-9 ()./-]+")


def _phone(value: str) -> str:
    if not isinstance(value, str):
        _fail("must be a string")
    text = value.strip()
    if not text.startswith("+"):
        # a national number ("0151 …") means nothing without knowing the country
        _fail(PHONE_NOT_INTERNATIONAL)
    if not _PHONE_CHARS.fullmatch(text):
        _fail("must contain only digits after the +, grouped by spaces, '-', '.', '/' or ()")
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            _fail("starts with an unknown country code")
        _fail("is not a phone number")
    if not phonenumbers.is_valid_number(number):
        _fail("is not a valid phone number (check the country code and the number of digits)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _confirmed(value: object) -> dict[str, str]:
    """What the callee confirmed, by name (``name``, ``date_of_birth``, ``postcode``, …).

    Checked here in one piece rather than by ``dict[str, str]`` so that every bad entry is
    reported with its key in the path; the date of birth is checked with the clock in
    :func:`_context_errors`.
    """
    if not isinstance(value, dict):
        _fail("must be a JSON object")
    if not value:
        _fail("must not be empty: name what the callee confirmed, e.g. name and date_of_birth")
    problems: list[tuple[str, str]] = []
    for key, item in value.items():
        if not isinstance(key, str) or _identifier_problem(key):
            bad_key = ("", f"every key must be a name of 1-{MAX_ID_LENGTH} printable characters")
            if bad_key not in problems:
                problems.append(bad_key)
        elif not isinstance(item, str):
            problems.append((f".{key}", "must be a string"))
        elif problem := _text_problem(item):
            problems.append((f".{key}", problem))
    if problems:
        raise _Invalid(*problems)
    return dict(value)


# --- the model ------------------------------------------------------------------------

_Slug = Annotated[str, AfterValidator(_slug)]
_Identifier = Annotated[str, AfterValidator(_identifier)]
_Text = Annotated[str, AfterValidator(_text)]
_Segment = Annotated[int, AfterValidator(_segment)]
_Milliseconds = Annotated[int, PlainValidator(_milliseconds)]
_Span = Annotated[
    tuple[int, int], PlainValidator(_span), PlainSerializer(list, return_type=list[int])
]
_Timestamp = Annotated[
    datetime,
    PlainValidator(_timestamp),
    PlainSerializer(_format_timestamp, return_type=str, when_used="json"),
]
_Phone = Annotated[str, AfterValidator(_phone)]
_Confirmed = Annotated[dict[str, str], PlainValidator(_confirmed)]


class _Part(BaseModel):
    # strict: "1" is not a segment and 1.0 is not a millisecond; extra="forbid": a typo
    # in a field name must fail the upload, not silently drop that piece of evidence
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Callee(_Part):
    # repr=False on PII: a logged model must not print it
    phone: _Phone = Field(repr=False)


class AdvertisingConsent(_Part):
    source: _Identifier
    obtained_at: _Timestamp
    reference: _Identifier


class Consent(_Part):
    recording_at_ms: _Milliseconds
    advertising: AdvertisingConsent | None = None


class Identity(_Part):
    method: _Text
    confirmed: _Confirmed = Field(repr=False)
    span_ms: _Span


class Intent(_Part):
    product: _Text
    price: _Text
    term: _Text
    statement: _Text = Field(repr=False)
    span_ms: _Span


_PUBLIC_INDEX_FIELDS = frozenset(
    {"client", "campaign", "call_id", "segment", "order_ref", "agent_id", "recorded_at"}
)


class Evidence(_Part):
    """One recorded order segment: who said yes (identity), to what (intent), with consent.

    Build it with :func:`parse_evidence`; validating the model directly skips the rules
    that need the clip's duration or the clock, and its errors are pydantic's.
    """

    client: _Slug
    campaign: _Slug
    call_id: _Identifier
    segment: _Segment
    order_ref: _Identifier
    agent_id: _Identifier
    recorded_at: _Timestamp
    callee: Callee
    consent: Consent
    identity: Identity
    intent: Intent
    withdrawal_notice_span_ms: _Span | None = None

    def to_document(self) -> dict[str, Any]:
        """JSON-ready normal form (E.164 phone, UTC ``Z`` times, absent options left out).

        Parsing the result gives an equal record, and the same record always gives the
        same document, so its RFC 8785 canonical JSON is a stable fingerprint.
        """
        return self.model_dump(mode="json", exclude_none=True)

    def public_index(self) -> dict[str, Any]:
        """The fields search needs and the database may hold in clear: ids and the time.

        Never the phone, the confirmed identity, or the statement: those stay inside
        the encrypted metadata object (DESIGN.md §3).
        """
        return self.model_dump(mode="json", include=set(_PUBLIC_INDEX_FIELDS))


_MODEL_AT: dict[str, type[BaseModel]] = {
    "": Evidence,
    "callee": Callee,
    "consent": Consent,
    "consent.advertising": AdvertisingConsent,
    "identity": Identity,
    "intent": Intent,
}


# --- parsing --------------------------------------------------------------------------


def normalise_phone(raw: str) -> str:
    """``raw`` as an E.164 string (``+4915112345678``); international form required."""
    try:
        return _phone(raw)
    except _Invalid as exc:
        problems = exc.problems
    # raised outside the except block: the phonenumbers error must not ride along
    raise InvalidEvidence(
        [FieldError("callee.phone", message) for _, message in problems],
        hint="write the number with + and the country code, e.g. +49 151 23456789",
    )


def parse_evidence(
    doc: Mapping[str, Any] | bytes | str,
    *,
    duration_ms: int | None = None,
    now: datetime | None = None,
) -> Evidence:
    """Validate an evidence document (JSON text or decoded mapping) into an :class:`Evidence`.

    ``duration_ms`` is the measured length of the clip: when given, every span must end
    inside it. ``now`` (aware; default: the system clock) bounds ``recorded_at`` and the
    date of birth. Raises :class:`InvalidEvidence` listing every broken rule.
    """
    if duration_ms is not None and (
        isinstance(duration_ms, bool) or not isinstance(duration_ms, int) or duration_ms <= 0
    ):
        raise ValueError("duration_ms must be a positive integer")
    if now is None:
        now = datetime.now(UTC)
    elif now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")

    data = _load(doc)
    if isinstance(data, FieldError):
        raise InvalidEvidence([data])
    errors: list[FieldError] = []
    evidence: Evidence | None = None
    try:
        evidence = Evidence.model_validate(data)
    except ValidationError as exc:
        errors += _from_pydantic(exc)
    errors += _context_errors(data, duration_ms, now)
    if errors or evidence is None:
        # outside the except block, so the ValidationError (which quotes the input,
        # PII included) is not attached as __context__ and never reaches a traceback
        raise InvalidEvidence(errors)
    return evidence


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; which one the dialer meant is unknowable
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")  # NaN / Infinity: Python extensions, not JSON


def _load(doc: object) -> dict[str, Any] | FieldError:
    """The document as a dict, or the one error that stops everything else."""
    if isinstance(doc, bytes | bytearray | str):
        try:
            doc = json.loads(doc, object_pairs_hook=_unique_keys, parse_constant=_reject_constant)
        except _DuplicateKey as dup:
            # field names are not PII; the key tells the dialer which field to fix
            return FieldError("$", f"the document repeats the field {dup.key!r}")
        except (ValueError, RecursionError):  # JSONDecodeError and bad UTF-8 are ValueErrors
            return FieldError("$", NOT_JSON)
    if not isinstance(doc, Mapping):
        return FieldError("$", NOT_OBJECT)
    # a field name is echoed in "unknown field" errors: it must be printable text first
    for bad in _bad_keys(doc, ""):
        return bad
    return dict(doc)


def _bad_keys(value: object, path: str) -> Iterator[FieldError]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and (problem := inputs.text_problem(key)):
                yield FieldError(path or "$", f"field names {problem}")
            else:
                yield from _bad_keys(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _bad_keys(item, f"{path}[{i}]")


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "$"


def _unknown_field(loc: tuple[int | str, ...]) -> str:
    model = _MODEL_AT.get(_path(loc[:-1]).removeprefix("$"))
    known = list(model.model_fields) if model else []
    guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
    return f"{UNKNOWN_FIELD} (did you mean {guess[0]!r}?)" if guess else UNKNOWN_FIELD


def _from_pydantic(exc: ValidationError) -> list[FieldError]:
    """pydantic's errors as ours: dotted paths, our messages, never the input."""
    out: list[FieldError] = []
    for err in exc.errors(include_url=False, include_input=False):
        path = _path(err["loc"])
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, _Invalid):
            out += [FieldError(path + at, message) for at, message in cause.problems]
        elif err["type"] == "extra_forbidden":
            out.append(FieldError(path, _unknown_field(err["loc"])))
        else:
            out.append(FieldError(path, _STRUCTURE_MESSAGES.get(err["type"], _FALLBACK)))
    return out


# --- rules across fields and against the context --------------------------------------


def _get(data: Mapping[str, Any], dotted: str) -> Any:
    """The raw value at a dotted path, or None when any level is missing or not an object."""
    value: Any = data
    for part in dotted.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


_T = TypeVar("_T")


def _valid(rule: Callable[[Any], _T], value: Any) -> _T | None:
    """The value if it passes its single-value rule, else None (already reported)."""
    if value is None:
        return None
    try:
        return rule(value)
    except _Invalid:
        return None


def _context_errors(
    data: Mapping[str, Any], duration_ms: int | None, now: datetime
) -> list[FieldError]:
    """Rules over several fields, the clip's duration and the clock.

    Each rule looks only at values that pass their own rules, so a broken field is
    reported once (by pydantic) and not again as a consequence here.
    """
    errors: list[FieldError] = []
    recorded_at = _valid(_timestamp, _get(data, "recorded_at"))
    if recorded_at is not None and recorded_at > now + FUTURE_TOLERANCE:
        errors.append(
            FieldError(
                "recorded_at",
                "is more than 5 minutes in the future; check the clock of the recording host",
            )
        )
    obtained_at = _valid(_timestamp, _get(data, "consent.advertising.obtained_at"))
    if recorded_at is not None and obtained_at is not None and obtained_at > recorded_at:
        errors.append(
            FieldError(
                "consent.advertising.obtained_at",
                "must not be after recorded_at: advertising consent must exist before the call",
            )
        )
    errors += _birth_date_errors(data, now)

    consent_ms = _valid(_milliseconds, _get(data, "consent.recording_at_ms"))
    spans = {field: _valid(_span, _get(data, field)) for field in _SPAN_FIELDS}
    if duration_ms is not None:
        errors += _duration_errors(consent_ms, spans, duration_ms)
    if consent_ms is not None:
        for field, what in (
            ("identity.span_ms", "the identity confirmation"),
            ("intent.span_ms", "the declaration of intent"),
        ):
            span = spans[field]
            if span is not None and consent_ms > span[0]:
                errors.append(
                    FieldError(
                        "consent.recording_at_ms",
                        f"consent to recording must come before {what} "
                        f"(consent at {consent_ms} ms, {what.removeprefix('the ')} "
                        f"starts at {span[0]} ms)",
                    )
                )
    return errors


def _birth_date_errors(data: Mapping[str, Any], now: datetime) -> list[FieldError]:
    dob = _get(data, _DOB_FIELD)
    # a non-string or blank value is already reported by the confirmed-values rule
    if not isinstance(dob, str) or not dob.strip():
        return []
    try:
        _birth_date(dob, now.astimezone(UTC).date())
    except _Invalid as exc:
        return [FieldError(_DOB_FIELD + at, message) for at, message in exc.problems]
    return []


def _duration_errors(
    consent_ms: int | None, spans: Mapping[str, tuple[int, int] | None], duration_ms: int
) -> list[FieldError]:
    errors: list[FieldError] = []
    if consent_ms is not None and consent_ms >= duration_ms:
        errors.append(
            FieldError(
                "consent.recording_at_ms",
                f"consent to recording at {consent_ms} ms is at or after the end of the clip "
                f"at {duration_ms} ms",
            )
        )
    for field, span in spans.items():
        if span is not None and span[1] > duration_ms:
            errors.append(
                FieldError(
                    f"{field}[1]",
                    f"span ends at {span[1]} ms, after the end of the clip at {duration_ms} ms",
                )
            )
    return errors
