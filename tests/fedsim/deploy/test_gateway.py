"""The fleet gateway passes on exactly the SuperNodes' calls: checked against Flower's own routes."""

from __future__ import annotations

import pytest
from fastapi.routing import iter_route_contexts
from flwr.superlink.main import create_app

from fedsim.deploy.gateway import allowed


def flower_routes() -> set[tuple[str, str]]:
    """Every (method, path) the SuperLink's HTTP app serves, as Flower 1.42 builds it."""
    app = create_app()
    return {(m, c.path) for c in iter_route_contexts(app.routes) for m in c.methods or ()}


def test_only_the_fleet_api_and_the_health_check_pass() -> None:
    routes = flower_routes()
    passed = {(method, path) for method, path in routes if allowed(method, path, path.encode())}
    fleet = {(m, p) for m, p in routes if p.startswith("/v1/fleet/")}
    assert len(fleet) >= 10 and fleet <= passed  # every call a SuperNode makes
    assert passed - fleet == {("GET", "/health"), ("HEAD", "/health")}
    refused = {p.split("/")[2] for _, p in routes - passed if p.startswith("/v1/")}
    assert refused == {"control", "runtime"}  # flwr run, node registration, the ServerApp's API


@pytest.mark.parametrize(
    ("method", "path", "raw"),
    [
        ("POST", "/v1/fleet/../control/start-run", None),  # an HTTP client would resolve the dots
        ("POST", "/v1/fleet/%2e%2e/control/start-run", None),
        ("POST", "/v1/fleet/pull-messages", b"/v1/fleet/pull%2Dmessages"),  # spelled differently
        ("POST", "/v1/fleet/pull-messages/", None),
        ("POST", "/v1//fleet/pull-messages", None),
        ("GET", "/v1/fleet/pull-messages", None),
        ("POST", "/health", None),
        ("GET", "/docs", None),
        ("GET", "/openapi.json", None),
    ],
)
def test_lookalike_paths_are_refused(method: str, path: str, raw: bytes | None) -> None:
    assert not allowed(method, path, raw)
