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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations
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
        """A position in the clip as mm:ss (minutes may exceed 59)."""
        if ms is None:
            return ""
        seconds = int(ms) // 1000
        return f"{seconds // 60:02d}:{seconds % 60:02d}"

    def seconds(self, ms: int) -> str:
        """Milliseconds as seconds for scripts (a data attribute, not for reading)."""
        return f"{ms / 1000:.3f}"
