"""Shared fixtures: real servers on free loopback ports, torn down after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Influxd, Mosquitto, ServerProcess, Victoria

REPO = Path(__file__).resolve().parent.parent


def _serve(server: ServerProcess) -> Iterator[ServerProcess]:
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    server = Influxd(tmp_path_factory.mktemp("influxd"))
    yield from _serve(server)  # type: ignore[misc]


@pytest.fixture
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victoria]:
    server = Victoria(tmp_path_factory.mktemp("victoria"))
    yield from _serve(server)  # type: ignore[misc]


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield from _serve(server)  # type: ignore[misc]


@pytest.fixture
def reference_config() -> Path:
    return REPO / "config" / "reference.toml"
