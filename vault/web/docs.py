"""``/docs``: the API's Swagger UI from the vendored swagger-ui-dist, without inline script.

FastAPI's own ``/docs`` loads Swagger UI from a CDN and starts it with an inline
``<script>``; this page loads the same bundle from ``/static`` and starts it from a static
file (``static/docs/swagger-init.js``) that reads the OpenAPI URL from a data attribute, so
the page runs under a Content-Security-Policy without ``'unsafe-inline'`` scripts. ReDoc
(also CDN-loaded) is not offered.
"""

from __future__ import annotations

from html import escape

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

from vault.web.assets import mount_static, static_url

# Swagger UI sets style attributes while rendering, and its CSS embeds SVG icons as data:
# URIs; scripts, connections and everything else stay on this origin.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – API documentation</title>
<link rel="stylesheet" href="{css}">
<link rel="icon" type="image/png" href="{icon}">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{bundle}"></script>
<script src="{init}"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Add ``/docs`` (and the ``/static`` mount it needs) to the API ``app``.

    ``app`` must be built with ``docs_url=None`` so FastAPI's CDN page is not there too.
    """
    mount_static(app)
    app.add_api_route(
        "/docs", docs_page, methods=["GET"], include_in_schema=False, response_class=HTMLResponse
    )


def docs_page(request: Request) -> HTMLResponse:
    app = request.app
    html = _PAGE.format(
        title=escape(app.title),
        css=static_url("vendor/swagger-ui-dist/swagger-ui.css"),
        icon=static_url("vendor/swagger-ui-dist/favicon-32x32.png"),
        openapi=escape(app.openapi_url or "/openapi.json"),
        bundle=static_url("vendor/swagger-ui-dist/swagger-ui-bundle.js"),
        init=static_url("docs/swagger-init.js"),
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": DOCS_CSP})
