"""vault.identifiers: one rule per identifier, the same in Python and in a JSON Schema."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field, ValidationError

from vault.identifiers import (
    CASE_REF,
    HANDLE,
    HOLD_ID,
    KEY_NAME,
    RECORD_ID,
    REQUEST_REF,
    SLUG,
    TOKEN_ID,
    new_hold_id,
    new_record_id,
    new_token_id,
)


def test_generated_ids_follow_their_rules():
    ids = [new_record_id() for _ in range(200)]
    assert all(RECORD_ID.matches(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert HOLD_ID.matches(new_hold_id()) and not RECORD_ID.matches(new_hold_id())
    assert TOKEN_ID.matches(new_token_id())


@pytest.mark.parametrize("bad", ["", "Acme", "-acme", "acme\n", "a b", "a" * 65, "_vault", 7, None])
def test_slug_refuses(bad):
    assert not SLUG.matches(bad)
    assert not HANDLE.matches(bad)


def test_slug_accepts():
    for good in ("acme", "telco-de", "a.b_c-9", "a" * 64):
        assert SLUG.matches(good) and HANDLE.matches(good)


def test_case_ref():
    for good in ("AZ-2026/17#3", "case:4711", "x"):
        assert CASE_REF.matches(good) and REQUEST_REF.matches(good)
    for bad in (" AZ", "AZ 17", "/x", "x" * 65, "Frau Müller", "x\n"):
        assert not CASE_REF.matches(bad)


def test_record_id_alphabet_is_crockford():
    assert RECORD_ID.matches("01jxq7p9k2m4n6r8t0v2w4y6z8")
    for letter in "ilou":  # not in Crockford base32
        assert not RECORD_ID.matches("01jxq7p9k2m4n6r8t0v2w4y6z" + letter)
    assert not RECORD_ID.matches("01JXQ7P9K2M4N6R8T0V2W4Y6Z8")


def test_key_name():
    assert KEY_NAME.matches("telco-de") and KEY_NAME.matches("exp-2028-11")
    assert not KEY_NAME.matches("a:b") and not KEY_NAME.matches("a b")


def test_schema_pattern_is_the_same_rule():
    class Body(BaseModel):
        client: str = Field(pattern=SLUG.pattern)

    assert SLUG.pattern == "^[a-z0-9][a-z0-9._-]{0,63}$"
    assert Body(client="acme").client == "acme"
    for bad in ("acme\n", "Acme", "a" * 65):
        with pytest.raises(ValidationError):
            Body(client=bad)
