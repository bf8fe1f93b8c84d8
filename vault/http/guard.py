"""Text from outside is refused before any route sees it (see :mod:`vault.inputs`).

One dependency of the whole app checks every path parameter, query parameter (name and
value) and every string of a JSON body: a NUL or other control character, or a lone
surrogate, is a 422 problem naming the field, before authentication, validation or a
database query. Routes and their models need not repeat it, and a field added tomorrow
is covered too. Headers are checked where they are read (patterns on the routes).
"""

from __future__ import annotations

from fastapi import Request

from vault.errors import FieldError
from vault.inputs import InvalidText, field_problems, json_problems, text_problem


async def refuse_bad_text(request: Request) -> None:
    errors = field_problems((f"path.{k}", v) for k, v in request.path_params.items())
    for name, value in request.query_params.multi_items():
        if text_problem(name):
            errors.append(FieldError("query", f"parameter names {text_problem(name)}"))
        else:
            errors += field_problems([(f"query.{name}", value)])
    errors += await _body_problems(request)
    if errors:
        raise InvalidText(
            errors, hint="remove control characters from the listed fields and send it again"
        )


async def _body_problems(request: Request) -> list[FieldError]:
    route = request.scope.get("route")
    # only a route that takes a JSON body: FastAPI has read (and cached) it already; an
    # upload's body is the clip, streamed later, and must not be read here
    if getattr(route, "body_field", None) is None:
        return []
    try:
        body = await request.json()
    except Exception:  # not JSON: the route's own validation answers that
        return []
    # multi-line text is fine in a body (a hold's reason); field paths as FastAPI names them
    return json_problems(body, "", multiline=True)
