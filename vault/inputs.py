"""Rules every piece of free text from outside obeys, wherever it enters (HTTP, CLI, evidence).

Control characters are transport garbage or an attack: a NUL cannot be stored in a
PostgreSQL text column (the driver raises mid-request), a line break in an id forges a log
line, an ESC sequence rewrites the operator's terminal. A lone surrogate is no Unicode text
at all: it cannot be encoded as UTF-8 for the database, a log entry or canonical JSON.
Both are refused at the door with the field's name, never with its value (it may be PII).

Multi-line text (a hold reason, a statement) may hold tab and line breaks; identifiers,
path segments and query parameters may not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from vault.errors import FieldError, InvalidEvidence

CONTROL = "must not contain control characters"
CONTROL_MULTILINE = "must not contain control characters other than tab and line breaks"
NOT_UNICODE = "must be valid Unicode text (it holds an unpaired surrogate)"

# Unicode category Cc is exactly U+0000-U+001F and U+007F-U+009F
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_MULTILINE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidText(InvalidEvidence):
    """Fields of a request or command line broke these rules (HTTP 422, CLI exit 3)."""

    kind = "invalid-request"

    def __init__(self, errors: list[FieldError], *, hint: str | None = None) -> None:
        super().__init__(errors, hint=hint or "remove control characters from the listed fields")
        self.message = "the input is invalid: " + "; ".join(str(e) for e in self.errors)
        self.args = (self.message,)


def text_problem(value: str, *, multiline: bool = False) -> str | None:
    """Why ``value`` is refused as text from outside, or None when it is acceptable."""
    if _SURROGATE.search(value):
        return NOT_UNICODE
    if (_CONTROL_MULTILINE if multiline else _CONTROL).search(value):
        return CONTROL_MULTILINE if multiline else CONTROL
    return None


def field_problems(
    fields: Iterable[tuple[str, object]], *, multiline: bool = False
) -> list[FieldError]:
    """One error per field whose text (or any text nested in it) breaks the rules."""
    errors: list[FieldError] = []
    for name, value in fields:
        errors += json_problems(value, name, multiline=multiline)
    return errors


def json_problems(value: Any, path: str, *, multiline: bool = True) -> list[FieldError]:
    """Errors for every string (and object key) in a decoded JSON value, by dotted path."""
    return list(_walk(value, path, multiline))


def _walk(value: Any, path: str, multiline: bool) -> Iterator[FieldError]:
    if isinstance(value, str):
        if problem := text_problem(value, multiline=multiline):
            yield FieldError(path or "body", problem)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (problem := text_problem(key)):
                # the key itself is the bad text: it cannot name the field
                yield FieldError(path or "body", f"field names {problem}")
                continue
            yield from _walk(item, f"{path}.{key}" if path else str(key), multiline)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]", multiline)
