"""docs/openapi.json against the real app: the same routes, and the same public ones.

The app is built by `make_app` from real objects in a temporary data directory (index,
archive, access log, sessions, throttle, clip cache, owner keys); nothing is served. A
route added to the code and not to the spec (or the reverse), or a handler marked
`@public` that the spec shows as needing the owner's session (or the reverse), fails
here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hubkit import FAST, PASSWORD

from hub.archive import Archive, RetentionPolicy
from hub.audit import AuditLog
from hub.store import Index
from hub.vault import create_owner_keys
from hub.web.app import SESSION_COOKIE, WebContext, make_app
from hub.web.auth import LoginThrottle, Sessions
from hub.web.clips import ClipCache

SPEC_PATH = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TEMPLATE_PARAM = re.compile(r"\{([^}/]+)\}")

Route = tuple[str, str]  # (METHOD, path template)


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text())


@pytest.fixture
def app(tmp_path: Path) -> Iterator[web.Application]:
    keyfile, _ = create_owner_keys(PASSWORD, kdf=FAST)
    keys_path = tmp_path / "keys.json"
    keys_path.write_text(keyfile.to_json())
    index = Index(tmp_path / "index.sqlite3")
    try:
        policy = RetentionPolicy(max_age_days=0, max_footage_bytes=0, min_free_bytes=0)
        context = WebContext(
            index=index,
            archive=Archive(tmp_path, index, keyfile.public_key(), policy),
            audit=AuditLog(index),
            keys_path=keys_path,
            cameras={},
            sessions=Sessions(idle_seconds=30 * 60.0),
            throttle=LoginThrottle(),
            clips=ClipCache(),
            secure_cookies=False,
        )
        yield make_app(context)
    finally:
        index.close()


def operations(spec: dict[str, Any]) -> Iterator[tuple[Route, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield (method.upper(), path), operation


def app_routes(app: web.Application) -> dict[Route, web.AbstractRoute]:
    """Every route but the HEAD twins aiohttp adds to each GET."""
    routes: dict[Route, web.AbstractRoute] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        routes[(route.method, route.resource.canonical)] = route
    return routes


def is_public(operation: dict[str, Any]) -> bool:
    """The spec's mark for a route that needs no session: an empty security list."""
    return operation.get("security") == []


def test_spec_is_openapi_3_1_with_the_session_cookie(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1.")
    scheme = spec["components"]["securitySchemes"]["sessionCookie"]
    assert scheme == scheme | {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE}
    assert spec["security"] == [{"sessionCookie": []}]


def test_routes_in_the_app_are_the_routes_in_the_spec(
    app: web.Application, spec: dict[str, Any]
) -> None:
    in_app = set(app_routes(app))
    in_spec = {route for route, _ in operations(spec)}
    assert in_app - in_spec == set(), "routes missing from docs/openapi.json"
    assert in_spec - in_app == set(), "docs/openapi.json names routes the app does not have"


def test_public_routes_are_marked_public_in_the_spec(
    app: web.Application, spec: dict[str, Any]
) -> None:
    routes = app_routes(app)
    public_in_app = {
        key for key, route in routes.items() if getattr(route.handler, "camhub_public", False)
    }
    public_in_spec = {route for route, operation in operations(spec) if is_public(operation)}
    assert public_in_app, "the app has no @public route at all"
    assert public_in_spec - public_in_app == set(), "spec says public, handler is not @public"
    assert public_in_app - public_in_spec == set(), "handler is @public, spec asks for a session"


def test_every_operation_documents_its_refusals(spec: dict[str, Any]) -> None:
    """Owner routes answer 401 without a session; state changes answer 403 cross-site."""
    for (method, path), operation in operations(spec):
        codes = set(operation["responses"])
        if not is_public(operation):
            assert "401" in codes, (method, path)
        if method in UNSAFE_METHODS:
            assert "403" in codes, (method, path)
    login = spec["paths"]["/api/login"]["post"]["responses"]["429"]
    assert "Retry-After" in login["headers"]


def test_path_parameters_are_declared(spec: dict[str, Any]) -> None:
    for (method, path), operation in operations(spec):
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(TEMPLATE_PARAM.findall(path)), (method, path)


def test_operation_ids_are_unique_and_refs_resolve(spec: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, operation in operations(spec)]
    assert len(ids) == len(set(ids))

    def refs(node: object) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for ref in refs(spec):
        assert ref.startswith("#/"), ref
        target: Any = spec
        for part in ref[2:].split("/"):
            assert isinstance(target, dict) and part in target, f"unresolved {ref}"
            target = target[part]
