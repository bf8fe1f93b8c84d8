"""The web app's static files: vendored packages and our own scripts, served under /static.

Everything a page loads comes from here (no CDN), so the pages work offline and a strict
Content-Security-Policy (``script-src 'self'``) holds.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
STATIC_URL = "/static"

# the types StaticFiles sends come from mimetypes, which reads the host's tables (some map
# .js to application/x-javascript); pin the ones the pages need
for _suffix, _type in {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
}.items():
    mimetypes.add_type(_type, _suffix)


def static_url(path: str) -> str:
    """The URL of a file under ``vault/web/static`` (``vendor/axe-core/axe.min.js``)."""
    return f"{STATIC_URL}/{path.lstrip('/')}"


def mount_static(app: FastAPI) -> None:
    """Serve ``vault/web/static`` under ``/static`` once, however many modules ask."""
    if any(getattr(r, "name", None) == "static" for r in app.router.routes):
        return
    app.mount(STATIC_URL, StaticFiles(directory=STATIC_DIR), name="static")
