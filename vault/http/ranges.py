"""HTTP byte ranges of a clip (RFC 9110 §14): one range is served, anything else is all."""

from __future__ import annotations

import re


def parse_range(value: str, total: int) -> tuple[int, int] | str | None:
    """(first, last) of one satisfiable range, "unsatisfiable", or None to send it all.

    RFC 9110 §14: a header that does not parse, another unit, or several ranges are
    answered with the whole clip (200), which the RFC allows.
    """
    unit, _, spec = value.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    m = re.fullmatch(r"\s*([0-9]*)\s*-\s*([0-9]*)\s*", spec)
    if not m or (not m[1] and not m[2]):
        return None
    if not m[1]:  # suffix: the last n bytes
        n = position(m[2])
        if n == 0 or total == 0:
            return "unsatisfiable"
        return max(0, total - n), total - 1
    first = position(m[1])
    if m[2] and position(m[2]) < first:
        return None  # invalid: ignored
    if first >= total:
        return "unsatisfiable"
    return first, min(position(m[2]) if m[2] else total - 1, total - 1)


#: more digits than any clip's size has: the value only matters as "beyond the end"
_POSITION_DIGITS = 18


def position(digits: str) -> int:
    """A byte position of a Range header; any absurdly long number counts as 10**18.

    Python refuses to convert numbers of more than 4,300 digits (a 500 before); a
    position beyond every clip answers the same whatever its exact value.
    """
    digits = digits.lstrip("0") or "0"
    return 10**_POSITION_DIGITS if len(digits) > _POSITION_DIGITS else int(digits)
