"""The daemon's event loop choice: uvloop by default where installed, the stock loop on request,
a clear refusal of anything else."""

from __future__ import annotations

import asyncio

import pytest

from drivers.eventloop import ENV, LoopChoiceError, loop_factory, loop_kind, run
from tests.servers import REPO, run_cli

uvloop = pytest.importorskip("uvloop")


async def _kind() -> str:
    return loop_kind(asyncio.get_running_loop())


def test_default_is_uvloop_and_asyncio_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert run(_kind()) == "uvloop"
    assert run(_kind(), "asyncio") == "asyncio"
    monkeypatch.setenv(ENV, "asyncio")
    assert run(_kind()) == "asyncio"
    assert run(_kind(), "uvloop") == "uvloop"  # the explicit choice wins over the environment


def test_an_unknown_loop_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "tokio")
    with pytest.raises(LoopChoiceError, match="'tokio'"):
        loop_factory()


def test_run_refuses_an_unknown_loop_in_one_line_exit_2() -> None:
    code, text = run_cli("run", "-c", str(REPO / "config" / "reference.toml"), "--loop", "tokio")
    assert code == 2, text
    assert "tokio" in text and "uvloop" in text and "Traceback" not in text, text
