"""The daemon of the reference installation on the emulated rig, publishing to its own mosquitto,
and the check that a replay of its recording gives its live results (shared by the tests of
what an operator or the lab sends it while it runs)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from chikyu_daq.replay.engine import ReplayOptions, replay
from chikyu_daq.store.reader import open_run
from tests.chikyu_daq.live.test_daemon import Daemon, daemon_config, start_daemon
from tests.servers import Mosquitto


@contextmanager
def daemon_on_broker(tmp: Path, rig: Path, name: str) -> Iterator[tuple[Daemon, Mosquitto]]:
    """A running daemon and its broker; the daemon is killed if the test did not stop it."""
    (tmp / "mq").mkdir()
    broker = Mosquitto(tmp / "mq")
    broker.start()
    try:
        cfg = daemon_config(tmp / "daq.toml", influx_url=None, mqtt_port=broker.port)
        d = start_daemon(tmp, cfg, rig, name)
        try:
            yield d, broker
        finally:
            if d.proc.poll() is None:
                d.proc.kill()
    finally:
        broker.kill()


def stop(d: Daemon) -> None:
    """An orderly stop (SIGTERM): everything recorded, exit 0."""
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(40) == 0, d.text()[-3000:]


def replay_equals_live(run_dir: Path, out: Path, columns: tuple[str, ...]) -> dict[str, Any]:
    """Replay the recording with its own config: `columns` equal the live results point for
    point (all but at most the last point, which the live daemon may not have computed);
    returns the live results."""
    summary = replay(run_dir, ReplayOptions(out_dir=out, report=False))
    assert summary["config_differences"] == {}
    rep = pq.read_table(out / "results.parquet").to_pydict()
    live = open_run(run_dir).results()
    _, il, ir = np.intersect1d(live["t_ns"], rep["t_ns"], return_indices=True)
    assert len(il) >= len(live["t_ns"]) - 1
    for k in columns:
        np.testing.assert_array_equal(np.asarray(rep[k])[ir], live[k][il], err_msg=k)
    return live
