"""The desk's German and English: complete catalogues, compiled files in step with them,
no text outside the catalogues in templates, locale choice, dates and zones."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from vault.web import i18n
from vault.web.desk import TEMPLATES

LOCALE = Path(i18n.LOCALE_DIR)


def _po(lang: str):
    with (LOCALE / lang / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        return read_po(fh, locale=lang)


def _pot_ids() -> set:
    with (LOCALE / "messages.pot").open("rb") as fh:
        return {m.id if isinstance(m.id, str) else tuple(m.id) for m in read_po(fh) if m.id}


def _ids(catalogue) -> set:
    return {m.id if isinstance(m.id, str) else tuple(m.id) for m in catalogue if m.id}


@pytest.mark.parametrize("lang", i18n.LOCALES)
def test_catalogues_hold_exactly_the_template_messages(lang):
    from babel.messages.extract import extract_from_dir

    method_map = [("vault/web/templates/**.html", "jinja2")]
    options = {
        "**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true"}
    }
    root = Path(__file__).parents[1]
    found = {
        msg[2] if isinstance(msg[2], str) else tuple(msg[2])
        for msg in extract_from_dir(root, method_map, options)
        if msg[0].startswith("vault/web/templates")
    }
    assert found == _pot_ids(), "run `make catalogues`"
    assert _ids(_po(lang)) == found


def test_german_is_complete():
    missing = [
        m.id
        for m in _po("de")
        if m.id and not all(m.string if isinstance(m.string, tuple) else [m.string])
    ]
    assert missing == []
    assert not [m.id for m in _po("de") if m.fuzzy and m.id]


@pytest.mark.parametrize("lang", i18n.LOCALES)
def test_compiled_catalogues_match_their_sources(lang):
    with (LOCALE / lang / "LC_MESSAGES" / "messages.mo").open("rb") as fh:
        shipped = read_mo(fh)
    fresh = BytesIO()
    write_mo(fresh, _po(lang))
    fresh.seek(0)
    compiled = read_mo(fresh)

    def pairs(catalogue) -> dict:
        return {_key(m.id): _key(m.string) for m in catalogue if m.id}

    assert pairs(shipped) == pairs(compiled)
    assert pairs(shipped)  # not empty


def _key(value):
    return value if isinstance(value, str) else tuple(value)


def stray_text(source: str) -> list[str]:
    """Words of a template outside ``{% trans %}`` blocks, expressions, statements and tags."""
    source = re.sub(r"{%-?\s*trans\b.*?{%-?\s*endtrans\s*-?%}", " ", source, flags=re.S)
    source = re.sub(r"{{.*?}}|{%.*?%}|{#.*?#}", "", source, flags=re.S)
    source = re.sub(r"<[^>]*>", " ", source)
    return re.findall(r"[^\W\d_]{2,}", source)


def test_templates_have_no_text_outside_the_catalogues():
    offenders = {
        path.name: words
        for path in sorted(TEMPLATES.glob("*.html"))
        if (words := stray_text(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


def test_stray_text_finds_text_and_ignores_translated_text():
    assert stray_text("<p>Hello there</p>") == ["Hello", "there"]
    assert stray_text('<p title="{{ x }}">{% trans %}Hello{% endtrans %} 1.5×</p>') == []
    assert stray_text("{% trans n=1 %}{{ n }} one{% pluralize %}many{% endtrans %}") == []


def _request(headers: dict | None = None, cookies: dict | None = None):
    return SimpleNamespace(headers=headers or {}, cookies=cookies or {})


@pytest.mark.parametrize(
    ("header", "cookie", "want"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", None, "de"),
        ("fr-FR,fr;q=0.9,de;q=0.5", None, "de"),
        ("en-GB,de;q=0.5", None, "en"),
        ("fr", None, "en"),
        ("", None, "en"),
        ("de;q=0.1,en;q=0.9", None, "en"),
        ("de", "en", "en"),
        ("en", "de", "de"),
        ("de", "xx", "de"),
        ("*;q=abc,de", None, "de"),
    ],
)
def test_locale_choice(header, cookie, want):
    cookies = {i18n.LANG_COOKIE: cookie} if cookie else {}
    assert i18n.choose_locale(_request({"accept-language": header}, cookies)) == want


def test_dates_numbers_and_zones_per_locale():
    ts = datetime(2026, 11, 22, 9, 14, 3, tzinfo=UTC)
    berlin = i18n.choose_zone(_request(), "Europe/Berlin")
    de = i18n.Formats("de", berlin)
    en = i18n.Formats(
        "en",
        i18n.choose_zone(_request(cookies={i18n.TZ_COOKIE: "America/New_York"}), "Europe/Berlin"),
    )
    assert de.datetime(ts) == "22.11.2026, 10:14:03"
    assert en.datetime(ts).startswith("Nov 22, 2026, 4:14:03") and en.datetime(ts).endswith("AM")
    assert de.number(1234567) == "1.234.567" and en.number(1234567) == "1,234,567"
    assert de.clock(61_999) == "01:01" and de.clock(3_600_000) == "60:00"
    # a zone the browser names wrongly falls back to the configured one
    bad = i18n.choose_zone(_request(cookies={i18n.TZ_COOKIE: "../../etc/passwd"}), "Europe/Berlin")
    assert str(bad) == "Europe/Berlin"
    assert str(i18n.choose_zone(_request(cookies={i18n.TZ_COOKIE: "Mars/Base"}), "UTC")) == "UTC"


def test_spans_prices_terms_and_sealed_dates_per_locale():
    zone = ZoneInfo("Europe/Berlin")
    de, en = i18n.Formats("de", zone), i18n.Formats("en", zone)
    assert de.span(21_000, 23_500) == "00:21\u2009–\u200900:23" == en.span(21_000, 23_500)
    assert de.rate(1.25) == "1,25×" and en.rate(1.25) == "1.25×"
    assert de.price("39.99 EUR/month") == "39,99\xa0€" and en.price("39.99 EUR") == "€39.99"
    assert de.price_period("39.99 EUR/month") == "month" and de.price("about 40 euros") is None
    assert de.term("24 months") == "24 Monate" and en.term("1 year") == "1 year"
    assert de.term("until cancelled") == "until cancelled"  # not a unit: as sealed
    assert de.sealed_date("1980-01-31") == "31.01.1980" and en.sealed_date("1980-01-31") == (
        "Jan 31, 1980"
    )
    assert de.sealed_date("Max Mustermann") == "Max Mustermann"
    assert de.sealed_time("2026-11-01T10:00:00Z") == "01.11.2026, 11:00:00"
    assert de.list(["Name", "PLZ"]) == "Name und PLZ" and en.list(["a", "b", "c"]) == (
        "a, b, and c"
    )


def test_catalogues_ship_in_the_wheel():
    import tomllib

    data = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    patterns = data["tool"]["setuptools"]["package-data"]["vault"]
    assert "web/locale/**/*" in patterns and "web/templates/**/*" in patterns
    assert (LOCALE / "de" / "LC_MESSAGES" / "messages.mo").is_file()
