"""Shared fixtures: real servers on free loopback ports, torn down after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import REPO, Influxd, Mosquitto, Victoria, serving


@pytest.fixture
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    server = Influxd(tmp_path_factory.mktemp("influxd"))
    yield from serving(server)


@pytest.fixture
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Victoria]:
    server = Victoria(tmp_path_factory.mktemp("victoria"))
    yield from serving(server)


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    server = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield from serving(server)


@pytest.fixture
def reference_config() -> Path:
    return REPO / "config" / "reference.toml"
