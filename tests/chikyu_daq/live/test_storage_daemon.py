"""The daemon on a disk that fills up: a real tmpfs as its data directory (recorder and InfluxDB
spool), a real influxd. The disk full must not end the daemon; once space returns, nothing that
was acquired meanwhile is missing, in the recording or in InfluxDB."""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest

from chikyu_daq.store.reader import open_run
from tests.chikyu_daq.fsfaults import fill, tmpfs
from tests.chikyu_daq.live.test_daemon import _influx_times, daemon_config, rig, start_daemon
from tests.servers import Influxd, wait_until

pytestmark = [pytest.mark.servers, pytest.mark.slow]
__all__ = ["rig"]  # the emulated hardware fixture, shared with test_daemon


def test_daemon_survives_a_full_disk_and_loses_nothing(rig: Path, tmp_path: Path) -> None:
    (tmp_path / "influxd").mkdir()
    influxd = Influxd(tmp_path / "influxd")
    influxd.start()
    try:
        influxd.create_db("chikyu")
        cfg = daemon_config(tmp_path / "daq.toml", influx_url=influxd.url, mqtt_port=None)
        with tmpfs(tmp_path / "data", "48m") as data:
            d = start_daemon(tmp_path, cfg, rig, "full")
            (run,) = d.run_dirs()

            def speed() -> np.ndarray:
                got = open_run(run).raw(["p101a.speed"]).get("p101a.speed")
                return got[0] if got else np.zeros(0, np.int64)

            wait_until(lambda: len(speed()) > 10, 30)
            n_before = len(speed())
            filler = fill(data)

            # both sinks hit ENOSPC (the spool when its page fills): each ended the daemon before
            def hit(logger: str) -> bool:
                return any(logger in ln and "No space left" in ln for ln in d.text().splitlines())

            def both_hit() -> bool:
                fill(data)  # keep it full: the spool frees space when it deletes shipped segments
                return hit("chikyu_daq.store.writer") and hit("chikyu_daq.sinks.influx.spool")

            wait_until(lambda: d.proc.poll() is not None or both_hit(), 60)
            n_full = len(speed())
            assert d.proc.poll() is None, d.text()[-3000:]  # exit 1 before
            filler.unlink()
            wait_until(lambda: len(speed()) > n_full + 10, 30)
            wait_until(lambda: "recovered" in d.text(), 30)  # logged once pending data is on disk
            d.proc.send_signal(signal.SIGTERM)
            assert d.proc.wait(40) == 0, d.text()[-3000:]
            t = speed()
            poll_s = np.median(np.diff(t)) / 1e9
            # no hole while the disk was full (a start-up stall under host load is not the point)
            assert np.diff(t[n_before - 1 :]).max() / 1e9 < 3 * poll_s
            db = _influx_times(influxd, "p101a", "speed")
            np.testing.assert_array_equal(np.sort(db), t)  # every sample once in InfluxDB
    finally:
        influxd.kill()
