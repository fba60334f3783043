"""The real evaluator service (`build_service`) served over HTTP with a token of each scope, for hardening tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sloplane.evaluator.http.auth import Scope, TokenStore, new_token
from sloplane.evaluator.server import EvaluatorService, ServerConfig, build_service
from sloplane.interop import load_paths
from sloplane.semantics.subjects import Fleet
from tests.conftest import minimal
from tests.servers import served_app

STAGED = minimal("checkout-staged") + "  stages:\n    - {name: canary, selector: {track: canary}}\n"
SCOPES = [scope.value for scope in Scope]
LIMITED = {f"{scope}@{service}": (scope, service) for scope in SCOPES for service in ("checkout", "search")}
"""Tokens limited to one service, by name: `gate@checkout` reaches both SLOs, `gate@search` neither."""


@dataclass
class Running:
    """The served evaluator and a token of each scope (named after the scope), and the `LIMITED` ones."""

    service: EvaluatorService
    url: str
    tokens: dict[str, str]

    def headers(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}


def two_slos(folder: Path) -> Fleet:
    """`checkout-availability` and the staged `checkout-staged` (stage `canary`), both of service `checkout`."""
    path = folder / "slos.yaml"
    path.write_text(minimal() + "---\n" + STAGED, encoding="utf-8")
    result = load_paths([path])
    assert not result.errors
    return Fleet(result.declarations)


def build(folder: Path, prometheus: str, **options: float) -> tuple[EvaluatorService, dict[str, str]]:
    """The service over `two_slos`, its log in `folder`, a token of each scope, and the `LIMITED` ones."""
    issued = {scope: new_token(scope, [scope]) for scope in SCOPES}
    issued |= {name: new_token(name, [scope], services=[service]) for name, (scope, service) in LIMITED.items()}
    tokens = TokenStore(entry for _, entry in issued.values())
    config = ServerConfig(prometheus, folder / "decisions.db", tokens, **options)  # type: ignore[arg-type]
    return build_service(two_slos(folder), config), {scope: token for scope, (token, _) in issued.items()}


@contextmanager
def running(folder: Path, prometheus: str, **options: float) -> Iterator[Running]:
    """`build`, started and served; closed afterwards."""
    service, tokens = build(folder, prometheus, **options)
    service.start()
    try:
        with served_app(service.app) as url:
            yield Running(service, url, tokens)
    finally:
        service.close()
