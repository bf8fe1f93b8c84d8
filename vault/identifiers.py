"""Which strings can name a thing of the vault's domain: one rule per kind of identifier.

Identifiers end up in object keys, key ids, log entries and log lines, so each rule is
narrow (no control characters, no blanks, nothing that breaks a key id or a path) and
kept here once. A rule is an unanchored regular expression (no top-level ``|``) with two
faces: :meth:`Identifier.matches` for Python, which matches the *whole* string (``\\A…\\Z``:
``re.match("^…$", "acme\\n")`` would accept a name that differs from the one stored), and
:attr:`Identifier.pattern`, anchored ``^…$`` for a JSON Schema or pydantic ``pattern=``
(JSON Schema regexes know no ``\\A`` and ``\\Z``; pydantic's ``$`` is the end of the text).
"""

from __future__ import annotations

import re
import secrets
import time


class Identifier:
    """One identifier rule; ``body`` is its unanchored regular expression."""

    __slots__ = ("body", "regex")

    def __init__(self, body: str) -> None:
        self.body = body
        self.regex = re.compile(rf"\A(?:{body})\Z")

    @property
    def pattern(self) -> str:
        """The rule anchored as ``^…$``, for JSON Schema and pydantic ``pattern=``."""
        return f"^{self.body}$"

    def matches(self, value: object) -> bool:
        """Whether ``value`` is a string that follows the rule from end to end."""
        return isinstance(value, str) and self.regex.match(value) is not None

    def __repr__(self) -> str:
        return f"Identifier({self.body!r})"


#: client and campaign ids: lower case, ``[a-z0-9]`` first, at most 64 characters. The
#: vault-wide log ``_vault`` is deliberately no slug, so no client can take its name.
SLUG = Identifier(r"[a-z0-9][a-z0-9._-]{0,63}")
#: person handles (a staff id or initials: they appear in the logs): the slug rule
HANDLE = Identifier(SLUG.body)
#: a reference into someone else's system — a dispute's or legal hold's case number, an
#: erasure request's reference. It goes into the log, which never carries personal data,
#: so it is an identifier, not free text.
CASE_REF = Identifier(r"[A-Za-z0-9][A-Za-z0-9._/:#-]{0,63}")
REQUEST_REF = CASE_REF
#: tenants and buckets inside key ids (``local:telco-de:exp-2028-11:1``): ':' and blanks
#: would break the id; a leading letter or digit keeps them readable in listings
KEY_NAME = Identifier(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,127}")

_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
#: record ids, as :func:`new_record_id` makes them: 26 lower-case Crockford base32 digits
RECORD_ID = Identifier(r"[0-9a-hjkmnp-tv-z]{26}")
#: hold ids: ``h`` and a record id's layout
HOLD_ID = Identifier(rf"h{RECORD_ID.body}")
#: Textform document ids: ``d`` and a record id's layout
DOCUMENT_ID = Identifier(rf"d{RECORD_ID.body}")
#: API token ids, as :func:`new_token_id` makes them (the secret is apart)
TOKEN_ID = Identifier(r"tk[0-9a-f]{16}")


def new_record_id() -> str:
    """26 chars of Crockford base32: 48-bit milliseconds then 80 random bits (ULID layout).

    The wall clock, not the vault's injectable clock: ids must stay unique and roughly
    time-ordered even when tests or replays pin the clock.
    """
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_hold_id() -> str:
    return "h" + new_record_id()


def new_document_id() -> str:
    return "d" + new_record_id()


def new_token_id() -> str:
    return "tk" + secrets.token_hex(8)
