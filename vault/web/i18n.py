"""German and English for the desk: message catalogues, locale choice, dates, numbers, zones.

Templates hold no text of their own: every word goes through ``{% trans %}`` / ``_()`` and
the catalogues in ``vault/web/locale/<lang>/LC_MESSAGES/messages.{po,mo}`` (the ``.mo`` files
are compiled and committed, so the wheel ships them; ``tests/test_web_i18n.py`` checks
they match the ``.po`` files). The locale is the ``desk_lang`` cookie (the switch on every
page), else the best match of ``Accept-Language``, else English. Times are shown in the
browser's zone (``desk_tz``, set by ``desk.js`` from ``Intl``) or the vault's
``[web] timezone`` (default Europe/Berlin).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.lists import format_list
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations, Translations
from babel.units import format_unit
from fastapi import Request

LOCALE_DIR = Path(__file__).parent / "locale"
LOCALES = ("en", "de")
DEFAULT = "en"
LANG_COOKIE = "desk_lang"
TZ_COOKIE = "desk_tz"


@functools.cache
def translations(lang: str) -> NullTranslations:
    return Translations.load(str(LOCALE_DIR), [lang], domain="messages")


def choose_locale(request: Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE, "")
    if chosen in LOCALES:
        return chosen
    header = request.headers.get("accept-language", "")
    wanted = []
    for part in header.split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag:
            wanted.append((q, tag.strip().replace("-", "_")))
    for _q, tag in sorted(wanted, key=lambda w: -w[0]):
        try:
            lang = Locale.parse(tag).language
        except (UnknownLocaleError, ValueError):
            continue
        if lang in LOCALES:
            return lang
    return DEFAULT


def choose_zone(request: Request, default: str) -> ZoneInfo:
    for name in (request.cookies.get(TZ_COOKIE, ""), default):
        if name and len(name) < 64 and ".." not in name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


@dataclass(frozen=True)
class Formats:
    """Per-request formatting: the locale's conventions, the reader's time zone."""

    lang: str
    zone: ZoneInfo

    def datetime(self, ts: datetime | None) -> str:
        if ts is None:
            return ""
        ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        return format_datetime(ts, "medium", tzinfo=self.zone, locale=self.lang)

    def date(self, ts: dt.datetime | None) -> str:
        if ts is None:
            return ""
        ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)
        return format_date(ts.astimezone(self.zone), "medium", locale=self.lang)

    def number(self, value: float | int) -> str:
        return format_decimal(value, locale=self.lang)

    def clock(self, ms: int | None) -> str:
        """A position in the clip as the locale's minutes:seconds (CLDR skeleton ``ms``;
        minutes may exceed 59)."""
        if ms is None:
            return ""
        seconds = int(ms) // 1000
        minutes, secs = divmod(seconds, 60)
        two = functools.partial(format_decimal, format="00", locale=self.lang)
        return f"{two(minutes)}{self.clock_separator}{two(secs)}"

    @property
    def clock_separator(self) -> str:
        return _clock_separator(self.lang)

    def span(self, start_ms: int, end_ms: int) -> str:
        """A span of the clip, ``mm:ss – mm:ss`` in the locale's interval pattern."""
        pattern = Locale.parse(self.lang).interval_formats.get(None) or "{0}–{1}"
        return pattern.replace("{0}", self.clock(start_ms)).replace("{1}", self.clock(end_ms))

    def rate(self, value: float) -> str:
        """A playback speed: ``1.5×`` / ``1,5×``."""
        return f"{format_decimal(value, locale=self.lang)}\u00d7"

    def list(self, items: list[str]) -> str:
        return format_list([str(i) for i in items], locale=self.lang)

    def sealed_date(self, text: str) -> str:
        """A sealed value that is an ISO date (e.g. a date of birth), in the locale; any
        other value as it was sealed."""
        if isinstance(text, str) and _ISO_DATE.fullmatch(text):
            try:
                return format_date(dt.date.fromisoformat(text), "medium", locale=self.lang)
            except ValueError:
                pass
        return text

    def sealed_time(self, text: str) -> str:
        """A sealed RFC 3339 timestamp in the reader's zone and locale (else as sealed)."""
        try:
            return self.datetime(datetime.fromisoformat(str(text).replace("Z", "+00:00")))
        except ValueError:
            return text

    def price(self, text: str) -> str | None:
        """``39.99 EUR`` as the locale's currency amount; None if the sealed text is not
        exactly amount and ISO 4217 code (then the page shows it as sealed)."""
        m = _PRICE.fullmatch(text.strip()) if isinstance(text, str) else None
        if not m:
            return None
        return format_currency(Decimal(m["amount"]), m["currency"], locale=self.lang)

    def price_period(self, text: str) -> str:
        """The ``/month`` (or ``/year`` ...) of a price the page formats, else ``""``."""
        m = _PRICE.fullmatch(text.strip()) if isinstance(text, str) else None
        return (m["per"] or "") if m else ""

    def term(self, text: str) -> str:
        """``24 months`` as the locale's unit (``24 Monate``); any other text as sealed."""
        m = _TERM.fullmatch(text.strip()) if isinstance(text, str) else None
        if not m:
            return text
        unit = "duration-" + m["unit"].lower().removesuffix("s")
        return format_unit(int(m["n"]), unit, length="long", locale=self.lang)

    def seconds(self, ms: int) -> str:
        """Milliseconds as seconds for scripts (a data attribute, not for reading)."""
        return f"{ms / 1000:.3f}"


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PRICE = re.compile(
    r"(?P<amount>\d{1,9}(?:\.\d{1,4})?) ?(?P<currency>[A-Z]{3})"
    r"(?: ?/ ?(?P<per>month|year|week|day))?"
)
_TERM = re.compile(r"(?P<n>\d{1,4}) (?P<unit>(?:month|year|week|day)s?)", re.IGNORECASE)


@functools.cache
def _clock_separator(lang: str) -> str:
    pattern = Locale.parse(lang).datetime_skeletons.get("ms")
    text = getattr(pattern, "pattern", None) or str(pattern or "mm:ss")
    between = re.search(r"m+([^ms]+)s+", text)
    return between[1].strip("'") if between else ":"
