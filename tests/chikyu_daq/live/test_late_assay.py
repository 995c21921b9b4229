"""Live and replay apply a late lab assay the same way (DESIGN "Grade": by its sample time, once
it has arrived): the daemon over a real mosquitto gets an assay sampled well before it arrives;
a replay of the recording gives the same results as the live run from the arrival on."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from chikyu_daq.store.events import AssayEvent
from chikyu_daq.store.reader import open_run
from tests.chikyu_daq.live.live_vs_replay import daemon_on_broker, replay_equals_live, stop
from tests.chikyu_daq.live.test_daemon import rig
from tests.servers import wait_until

__all__ = ["rig"]  # the module-scoped emulator fixture, shared with test_daemon

pytestmark = [pytest.mark.servers, pytest.mark.slow]

PREFIX = "chikyu/chikyu"
#: Far from the configured default grade, so the grade column shows when the assay applies.
REY_PPM = 4321.0
#: How long before its arrival the assay was sampled (the lab's turnaround, shortened).
LATE_S = 12.0
#: Result columns that the grade decides (and the alarm bits, which must not differ either).
GRADED = ("grade_ppm", "rey_kg_h", "cum_rey_kg", "u95_cum_rey_kg", "cum_reo_kg", "alarm_bits")


class Lab:
    """The lab and a SCADA on the broker: posts an assay, watches the 1 Hz yield feed."""

    def __init__(self, port: int) -> None:
        self.rows: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="lab")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{PREFIX}/yield", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self.lock:
            self.rows.append(json.loads(msg.payload))

    def span_s(self) -> float:
        with self.lock:
            ts = [r["t_ns"] for r in self.rows]
        return (max(ts) - min(ts)) / 1e9 if ts else 0.0

    def graded_since(self) -> list[int]:
        with self.lock:
            return [r["t_ns"] for r in self.rows if r.get("grade_ppm") == REY_PPM]

    def post(self, sampled_ns: int) -> None:
        at = datetime.fromtimestamp(sampled_ns / 1e9, UTC).isoformat()
        doc = {"sample_id": "LATE-1", "sampled_at": at, "rey_ppm": REY_PPM, "u_rey_ppm": 90.0}
        self.client.publish(f"{PREFIX}/lab/assay", json.dumps(doc), qos=1)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_a_late_assay_gives_the_same_results_live_and_in_replay(rig: Path, tmp_path: Path) -> None:
    with daemon_on_broker(tmp_path, rig, "late") as (d, broker):
        lab = Lab(broker.port)
        try:
            wait_until(lambda: lab.span_s() >= LATE_S + 4, 60)
            with lab.lock:
                newest = max(r["t_ns"] for r in lab.rows)
            sampled = newest - int(LATE_S * 1e9)  # computed live long before it arrives
            lab.post(sampled)
            wait_until(lambda: len(lab.graded_since()) >= 5, 30)
            stop(d)
        finally:
            lab.close()
    (run_dir,) = d.run_dirs()
    assert [e.t_ns for e in open_run(run_dir).records() if isinstance(e, AssayEvent)] == [sampled]
    live = replay_equals_live(run_dir, tmp_path / "replay", GRADED)
    t = live["t_ns"]
    applied = t[live["grade_ppm"] == REY_PPM]
    # live: not from its sample time (those points were computed before it came), from arrival
    assert applied.size and applied[0] > sampled + 5e9 and applied[-1] == t[-1]
