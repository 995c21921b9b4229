"""A cold start: the daemon records from its first second while the kernels compile in the
background, then its results cover every sample recorded meanwhile.

The emulated rig (`hil serve`) over TCP, the real `chikyu-daq run`, an empty numba cache. The
compile is the test's cost (15-30 s of one core), so it is one daemon and one test.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import numpy as np
import pytest

from chikyu_daq.store.reader import open_run
from tests.chikyu_daq.live.test_daemon import daemon_config, start_daemon
from tests.chikyu_daq.live.test_daemon import rig as rig  # the fixture: one emulated rig
from tests.servers import wait_until

pytestmark = [pytest.mark.slow]

ROLE_CHANNELS = ("ft101.volume_flow", "ft201.volume_flow", "dt201.density", "pt301.pressure")


def test_cold_start_records_at_once_and_results_cover_it(
    rig: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba-cold"))  # nothing compiled
    cfg = daemon_config(tmp_path / "daq.toml", influx_url=None, mqtt_port=None)
    d = start_daemon(tmp_path, cfg, rig, "cold")
    try:
        # READY while the kernels still compile, and it says so
        assert "kernels ready" not in d.text()
        (ready,) = d.notify.seen("READY", "1")
        assert "kernels warming up" in ready["STATUS"]
        (run_dir,) = d.run_dirs()
        wait_until(lambda: "kernels ready in" in d.text(), 240)
        ready_ns = time.time_ns()
        raw = open_run(run_dir).raw(list(ROLE_CHANNELS))
        first = min(int(raw[ch][0][0]) for ch in ROLE_CHANNELS)
        # recorded from the start: samples long before the kernels were ready
        assert ready_ns - first > 5_000_000_000, d.text()[-2000:]

        def covered() -> bool:
            res = open_run(run_dir).results()
            return len(res.get("t_ns", [])) > 0 and int(res["t_ns"][-1]) > ready_ns

        wait_until(covered, 30)
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(40) == 0, d.text()[-2000:]
        t = open_run(run_dir).results()["t_ns"]
        # the first grid point is at the first samples (another role may lead by a poll), and
        # none is missing up to the last
        assert -1_000_000_000 < int(t[0]) - first <= 100_000_000
        assert np.all(np.diff(t) == 100_000_000)
        assert "not processed" not in d.text()
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)
