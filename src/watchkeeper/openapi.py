"""The OpenAPI schema as the server really answers: every error an operation can give, with its real body.

FastAPI documents the success answer and a 422 whose body is its own `HTTPValidationError`. Our errors are
`{"detail": "<message>"}` (and for a 422 also `"errors": [{"field", "message"}]`, see api.py), and they come
from the dependencies an operation uses, so they are read off those here:

| status | declared on |
|---|---|
| 400 | a body that cannot be read; a `cursor`, `filter` or `receiver` parameter we cannot read |
| 401 | every operation (all need a token or a session) |
| 403 | changes (read-only token, role, CSRF) and reads for admins or for the account (`Account`, `AdminReader`) |
| 404 | operations with an id in the path (what the caller cannot see does not exist), or `responses=NOT_FOUND` |
| 409 | where the operation declares it (`responses=CONFLICT`) |
| 422 | every operation (bad input names the field) |
| 503 | changes (the writer's queue is full; `Retry-After`) |

`scripts/openapi_conformance.py` (in CI) checks with schemathesis that answers and schema agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel

SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class Problem(BaseModel):
    """Every error answer: what went wrong, naming the field when there is one."""

    detail: str


class FieldProblem(BaseModel):
    field: str
    message: str


class ValidationProblem(BaseModel):
    """A 422: the summary and one entry per field."""

    detail: str
    errors: list[FieldProblem]


CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "Conflict with the current state (or with a file that manages it)"}
}

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Something the body names is not found, or not visible to the caller"}
}

_DESCRIPTIONS = {
    400: "Unreadable body, cursor or filter",
    401: "No valid token or session",
    403: "Not allowed: read-only token, role, token limited to projects, or missing CSRF token",
    404: "Not found, or not visible to the caller",
    422: "Invalid input: `errors` names each field",
    503: "Server busy: retry after the `Retry-After` seconds",
}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)


def _ref(name: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}


def _statuses(route: APIRoute, method: str, forbidding: set[Callable[..., Any]]) -> set[int]:
    statuses = {401, 422}
    if method not in SAFE:
        statuses |= {403, 503}
    if forbidding & set(_calls(route.dependant)):
        statuses.add(403)
    if route.dependant.path_params:
        statuses.add(404)
    readable = {p.name for p in route.dependant.query_params} & {"cursor", "filter", "receiver"}
    if route.body_field is not None or readable:
        statuses.add(400)
    return statuses


def declare_errors(schema: dict[str, Any], routes: list[Any], forbidding: set[Callable[..., Any]]) -> None:
    """Add the error answers each operation can give (see the table above) to a generated schema."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (Problem, FieldProblem, ValidationProblem):
        components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    # Routers included in the app are branches (FastAPI 0.16x); iter_route_contexts gives each route with
    # its full path.
    for context in iter_route_contexts(routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        for method in context.methods or ():
            operation = schema["paths"].get(context.path_format, {}).get(method.lower())
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            for status in _statuses(route, method, forbidding):
                name = "ValidationProblem" if status == 422 else "Problem"
                responses[str(status)] = {"description": _DESCRIPTIONS[status], **_ref(name)}
            for declared in ("404", "409"):  # by the route (NOT_FOUND, CONFLICT): the same body
                if declared in responses:
                    responses[declared].update(_ref("Problem"))


def install(app: FastAPI, forbidding: set[Callable[..., Any]]) -> None:
    """Make `app.openapi()` declare the real errors; `forbidding` are the dependencies that may answer 403."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            declare_errors(generate(), app.routes, forbidding)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
