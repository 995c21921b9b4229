"""Alarm lifecycle through the real daemon: emulated hardware (`hil serve`), a real mosquitto and
influxd; operators acknowledge and shelve over MQTT and the CLI; states are retained, recorded,
written to InfluxDB, and survive a SIGHUP reload and a restart."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chikyu_daq.replay.engine import ReplayOptions, replay
from chikyu_daq.store.reader import open_run
from tests.chikyu_daq.alarms.daemon_operator import MqttOperator, control_cli
from tests.chikyu_daq.live.test_daemon import daemon_config, rig, start_daemon
from tests.servers import Influxd, Mosquitto, wait_until

__all__ = ["rig"]  # the module-scoped emulator fixture, shared with test_daemon

pytestmark = [pytest.mark.servers, pytest.mark.slow]

PREFIX = "chikyu/chikyu"
ALARM = "DEPOSITION_RISK"


class Operator(MqttOperator):
    """Watches the retained alarm states and the KPIs, sends alarm commands."""

    def __init__(self, port: int) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.kpi: dict[str, Any] = {}
        topics = ["alarms/state/#", "cmd/alarms/reply", "alarms/kpi"]
        super().__init__(port, [f"{PREFIX}/{t}" for t in topics])

    def take(self, topic: str, doc: dict[str, Any]) -> None:
        if topic.endswith("/kpi"):
            self.kpi = doc
        else:
            self.states[topic.rsplit("/", 1)[-1]] = doc

    def state(self, name: str) -> str | None:
        with self.lock:
            return self.states.get(name, {}).get("state")

    def send(self, action: str, payload: bytes | dict[str, Any]) -> dict[str, Any]:
        return self.command(f"{PREFIX}/cmd/alarms/{action}", payload)


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return control_cli("alarms", data_dir, *args)


def listed(data_dir: Path) -> dict[str, Any]:
    """`alarms list --json` once the daemon answers on its control socket."""
    p = wait_until(lambda: (r := cli(data_dir, "list", "--json")).returncode == 0 and r, 30)
    return dict(json.loads(p.stdout))


def alarm_config(path: Path, influx_url: str, mqtt_port: int) -> Path:
    """DEPOSITION_RISK raises at once on the emulators' steady flow (margin ~1.5 < 2);
    PLUG_SUSPECTED is suppressed by design while p101a runs above 100 rpm."""
    daemon_config(path, influx_url=influx_url, mqtt_port=mqtt_port)
    text = path.read_text()
    old = "[alarms.DEPOSITION_RISK]          # deposition margin V / Vc (Durand) falls below\n"
    old += "raise_at = 1.1\nclear_at = 1.2\nmin_duration_s = 30.0\n"
    assert old in text
    text = text.replace(
        old, "[alarms.DEPOSITION_RISK]\nraise_at = 2.0\nclear_at = 2.5\nmin_duration_s = 0.0\n"
    )
    text += """
[alarm_management]
max_shelve_s = 600.0
priorities = { DEPOSITION_RISK = "high" }

[[alarm_management.suppress]]
alarms = ["PLUG_SUSPECTED"]
reason = "pump running (test rule)"
when = [{ channel = "p101a.speed", above = 100.0 }]
"""
    path.write_text(text)
    return path


def test_ack_shelve_over_mqtt_and_cli_retained_recorded_and_persisted(
    rig: Path, tmp_path: Path
) -> None:
    (tmp_path / "mq").mkdir()
    (tmp_path / "ix").mkdir()
    broker, influxd = Mosquitto(tmp_path / "mq"), Influxd(tmp_path / "ix")
    broker.start()
    influxd.start()
    influxd.create_db("chikyu")
    op = Operator(broker.port)
    cfg = alarm_config(tmp_path / "daq.toml", influxd.url, broker.port)
    d = start_daemon(tmp_path, cfg, rig, "alarms")
    data = d.data_dir
    try:
        wait_until(lambda: op.state(ALARM) == "active_unacked", 30)
        assert op.states[ALARM]["priority"] == "high"
        wait_until(lambda: op.state("PLUG_SUSPECTED") == "suppressed", 10)

        # bad commands: rejected with a reason on the reply topic, nothing changes
        r = op.send("ack", {"alarm": ALARM, "id": "c0"})
        assert r == {
            "accepted": False,
            "id": "c0",
            "action": "ack",
            "alarm": ALARM,
            "reason": "ack needs operator",
        }
        assert "not JSON" in op.send("ack", b"{nope")["reason"]
        assert "unknown alarm" in op.send("ack", {"alarm": "NOPE", "operator": "x"})["reason"]
        assert "action must be" in op.send("silence", {"alarm": ALARM, "operator": "x"})["reason"]
        r = op.send("shelve", {"alarm": ALARM, "operator": "x", "reason": "y", "duration_s": 601})
        assert "max shelve time" in r["reason"]
        assert op.state(ALARM) == "active_unacked"

        # acknowledge over MQTT
        r = op.send("ack", {"alarm": ALARM, "operator": "sato", "reason": "seen", "id": "c1"})
        assert r["accepted"] and r["id"] == "c1" and r["state"]["state"] == "active_acked"
        wait_until(lambda: op.state(ALARM) == "active_acked", 10)

        # shelve from the CLI for 2 s; it returns, still active, so unacknowledged again
        p = cli(data, "shelve", ALARM, "--operator", "ito", "--reason", "valve work", "--for", "2")
        assert p.returncode == 0, p.stderr
        assert f"{ALARM}: shelved" in p.stdout
        wait_until(lambda: op.state(ALARM) == "shelved", 10)
        wait_until(lambda: op.state(ALARM) == "active_unacked", 15)
        assert op.states[ALARM]["cause"] == "shelve_expired"
        p = cli(data, "ack", ALARM, "--operator", "ito")
        assert p.returncode == 0, p.stderr
        p = cli(data, "ack", ALARM, "--operator", "ito")
        assert p.returncode == 1 and "already acknowledged" in p.stderr
        # live KPIs, retained: one annunciated alarm, shelved for its 2 s
        wait_until(lambda: op.kpi.get("shelved_s", {}).get(ALARM), 10)
        assert op.kpi["annunciated"] == 1 and op.kpi["top10"] == [[ALARM, 1]]

        # SIGHUP with a valid change: new run, same lifecycle state
        (run1,) = d.run_dirs()
        cfg.write_text(cfg.read_text().replace("segment_s = 600.0", "segment_s = 300.0"))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: len(d.run_dirs()) == 2, 30)
        doc = listed(data)
        states = {a["name"]: a["state"] for a in doc["alarms"]}
        assert states[ALARM] == "active_acked" and states["PLUG_SUSPECTED"] == "suppressed"
        assert doc["kpis"]["annunciated"] == 1  # one raise; a shelve returning is not one

        # restart: the state file brings the acknowledgement back
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(40) == 0
        assert cli(data, "list").returncode == 3  # no daemon: says so, exit 3
        d = start_daemon(tmp_path, cfg, rig, "alarms2")
        assert {a["name"]: a["state"] for a in listed(data)["alarms"]}[ALARM] == "active_acked"
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(40) == 0
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
        op.close()
        broker.kill()

    # every transition is in the recording, with who did it and why
    events = [e for e in open_run(run1).events() if e.get("type") == "alarm_state"]
    seq = [
        (e["name"], e["cause"], e["to_state"], e["operator"]) for e in events if e["name"] == ALARM
    ]
    assert seq[:5] == [
        (ALARM, "raise", "active_unacked", ""),
        (ALARM, "ack", "active_acked", "sato"),
        (ALARM, "shelve", "shelved", "ito"),
        (ALARM, "shelve_expired", "active_unacked", "system"),
        (ALARM, "ack", "active_acked", "ito"),
    ]
    # a replay of that run reports the KPIs: of its own raise/clear, and of the recorded lifecycle
    summary = replay(run1, ReplayOptions(out_dir=tmp_path / "replay", report=False))
    assert summary["alarm_kpis"]["top10"] == [[ALARM, 1]]
    rec = summary["alarm_kpis_recorded"]
    assert rec["annunciated"] == 1 and rec["top10"] == [[ALARM, 1]]
    assert 2.0 <= rec["shelved_s"][ALARM] < 4.0  # shelved "--for 2", expired on a 1 s tick
    # and in InfluxDB
    try:
        res = influxd.query(
            'SELECT "state", "operator", "cause" FROM "alarm_state" WHERE "alarm" = \'DEPOSITION_RISK\'',
            db="chikyu",
        )
        rows = res["results"][0]["series"][0]["values"]
        assert [r[3] for r in rows[:5]] == ["raise", "ack", "shelve", "shelve_expired", "ack"]
        assert rows[1][2] == "sato"
    finally:
        influxd.kill()
