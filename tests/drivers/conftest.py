"""The read-only promise, checked over the whole session: no emulator ever saw a write code."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hil.emulators.unit import GLOBAL_FC_LOG, WRITE_FUNCTIONS


@pytest.fixture(autouse=True, scope="session")
def _no_modbus_writes() -> Iterator[None]:
    yield
    writes = {fc: n for fc, n in GLOBAL_FC_LOG.items() if fc in WRITE_FUNCTIONS and n > 0}
    assert not writes, f"Modbus write function codes reached an emulator: {writes}"
