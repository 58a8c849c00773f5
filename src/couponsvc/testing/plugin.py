"""The pytest plugin (entry point ``pytest11``): fixtures ``couponsvc_server`` and ``couponsvc``.

    def test_dispatch(couponsvc):
        ...point the SDK at couponsvc.rest_url with couponsvc.developer_token / access_token...
        assert couponsvc.mail(to="ada@example.com")

- ``couponsvc_server``: one real ``couponsvc serve --twin`` for the session (ini ``couponsvc_scope`` =
  ``session`` | ``package`` | ``module`` | ``function``), SQLite and Maildir in a temporary directory.
- ``couponsvc``: the same server, reset before each test (to the start seed, or to the seed of the
  test's ``@pytest.mark.couponsvc_seed({...})`` marker): every test starts from a clean state.
- The start seed: ini ``couponsvc_seed`` (a JSON file, relative to the rootdir), or override the
  session-scoped fixture ``couponsvc_seed`` (a document, a path, or None for the built-in seed);
  extra settings: override the session-scoped fixture ``couponsvc_env`` (a dict of COUPONSVC_* values).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from couponsvc.testing.twin import CouponsvcTwin, start_twin

SCOPES = ("session", "package", "module", "class", "function")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("couponsvc_seed", "seed file (JSON) the couponsvc twin starts with and resets to", default="")
    parser.addini("couponsvc_scope", "scope of the couponsvc_server fixture (default: session)", default="session")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "couponsvc_seed(document): reset the couponsvc twin to this seed document "
                                       "(instead of the start seed) before the test")


def _server_scope(fixture_name: str, config: pytest.Config) -> Any:
    scope = str(config.getini("couponsvc_scope") or "session").strip()
    if scope not in SCOPES:
        raise pytest.UsageError(f"couponsvc_scope = {scope!r}: use one of {', '.join(SCOPES)}")
    return scope


@pytest.fixture(scope="session")
def couponsvc_seed(pytestconfig: pytest.Config) -> Mapping[str, Any] | str | Path | None:
    """The seed the twin starts with and ``reset()`` returns to (override this fixture to choose another)."""
    configured = str(pytestconfig.getini("couponsvc_seed") or "").strip()
    return Path(pytestconfig.rootpath, configured) if configured else None


@pytest.fixture(scope="session")
def couponsvc_env() -> Mapping[str, str]:
    """Extra COUPONSVC_* settings for the twin process (override to set e.g. COUPONSVC_MAIL_URL)."""
    return {}


@pytest.fixture(scope=_server_scope)
def couponsvc_server(tmp_path_factory: pytest.TempPathFactory, couponsvc_seed: Any,
                     couponsvc_env: Mapping[str, str]) -> Iterator[CouponsvcTwin]:
    """A running ``couponsvc serve --twin``: ``soap_url``, ``rest_url``, ``developer_token``,
    ``access_token``, and ``mail()``, ``calls()``, ``reset()``, ``fault()``, ``clock()``."""
    twin = start_twin(tmp_path_factory.mktemp("couponsvc"), couponsvc_seed, couponsvc_env)
    try:
        yield twin
    finally:
        twin.stop()


@pytest.fixture
def couponsvc(couponsvc_server: CouponsvcTwin, request: pytest.FixtureRequest) -> CouponsvcTwin:
    """The twin, reset before this test (to the marker's seed when the test has ``couponsvc_seed``)."""
    marker = request.node.get_closest_marker("couponsvc_seed")
    couponsvc_server.reset(marker.args[0] if marker is not None and marker.args else None)
    return couponsvc_server
