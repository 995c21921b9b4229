"""The daemon end to end: emulated hardware (`hil serve`), a real influxd and mosquitto, and a
notify socket standing in for systemd. One live run is shared by the assertions that only read
its artefacts; crash and reload scenarios run their own daemons."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chikyu_daq.replay.engine import ReplayOptions, replay
from chikyu_daq.store.reader import open_run
from drivers.eventloop import loop_factory
from tests.servers import CLI, REPO, Influxd, Mosquitto, hil_serve, run_cli, wait_until

pytestmark = [pytest.mark.servers, pytest.mark.slow]

REFERENCE = (REPO / "config" / "reference.toml").read_text()


def daemon_config(path: Path, *, influx_url: str | None, mqtt_port: int | None) -> Path:
    """The reference installation with outputs pointed at the test's servers."""
    head = REFERENCE[: REFERENCE.index("[outputs.influx]")]
    out = head
    if influx_url:
        out += (
            f'[outputs.influx]\nenabled = true\ndialect = "v1"\nurl = "{influx_url}"\n'
            'db = "chikyu"\n'
        )
    if mqtt_port:
        out += (
            f'[outputs.mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {mqtt_port}\n'
            'client_id = "daq-test"\n'
        )
    path.write_text(out)
    return path


class NotifySocket:
    """What systemd listens on: datagrams of `KEY=value` lines from the service.

    Read all the time by a thread, as systemd does: the kernel queues only
    `net.unix.max_dgram_qlen` (10 by default) unread datagrams and the daemon's non-blocking
    sends past that are lost, so a socket read only when a test looks would drop STOPPING=1
    sent after a minute of watchdog pings."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"notify-{path.name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():  # bounded by close() (and the process's end)
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.messages.append(fields)

    def seen(self, key: str, value: str | None = None) -> list[dict[str, str]]:
        with self._lock:
            return [m for m in self.messages if key in m and (value is None or m[key] == value)]

    def close(self) -> None:
        self._stop.set()
        self._reader.join(5)
        self.sock.close()


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    log: Path
    notify: NotifySocket
    data_dir: Path
    config: Path
    started_ns: int = field(default_factory=time.time_ns)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def run_dirs(self) -> list[Path]:
        return sorted((self.data_dir / "runs").iterdir())


def start_daemon(tmp: Path, config: Path, endpoints: Path, name: str) -> Daemon:
    notify = NotifySocket(tmp / f"{name}.notify")
    log = tmp / f"{name}.log"
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"}
    env.pop("WATCHDOG_PID", None)
    data = tmp / "data"
    with log.open("ab") as f:
        proc = subprocess.Popen(
            [
                *CLI,
                "run",
                "-c",
                str(config),
                "--data-dir",
                str(data),
                "--endpoints",
                str(endpoints),
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    d = Daemon(proc, log, notify, data, config)
    wait_until(lambda: d.notify.seen("READY", "1") or proc.poll() is not None, 60)
    assert proc.poll() is None, d.text()
    return d


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("rig")
    endpoints = tmp / "endpoints.json"
    with hil_serve(REPO / "config" / "reference.toml", endpoints):
        yield endpoints


@dataclass
class LiveRun:
    daemon: Daemon
    influxd: Influxd
    run_dir: Path
    mqtt_yield: list[dict[str, object]]
    mqtt_status_after: dict[str, object]
    returncode: int
    stop_s: float


@pytest.fixture(scope="module")
def live(rig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    tmp = tmp_path_factory.mktemp("live")
    influxd = Influxd(tmp_path_factory.mktemp("influxd"))
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    influxd.start()
    broker.start()
    try:
        influxd.create_db("chikyu")
        cfg = daemon_config(tmp / "daq.toml", influx_url=influxd.url, mqtt_port=broker.port)
        listener = subprocess.Popen(
            broker.sub_command("chikyu/chikyu/yield", 5, 60),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        d = start_daemon(tmp, cfg, rig, "live")
        out, _ = listener.communicate(timeout=70)
        yields = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        # SIGHUP with a broken file: rejected, the old config keeps running
        good = cfg.read_text()
        cfg.write_text(good.replace("[devices.p101a]", "[devices.p101a]\npoll_hz = [5"))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload rejected" in d.text(), 20)
        cfg.write_text(good)
        reload_ns = time.time_ns()
        wait_until(lambda: _count(influxd, "p101a", "speed", since_ns=reload_ns) > 10, 20)
        t_stop = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(40)
        stop_s = time.monotonic() - t_stop
        status = subprocess.run(
            broker.sub_command("chikyu/chikyu/status", 1, 10),
            capture_output=True,
            timeout=20,
        )
        (run_dir,) = d.run_dirs()
        yield LiveRun(d, influxd, run_dir, yields, json.loads(status.stdout or b"{}"), rc, stop_s)
    finally:
        influxd.kill()
        broker.kill()


def _count(influxd: Influxd, measurement: str, field_: str, since_ns: int = 0) -> int:
    res = influxd.query(
        f'SELECT count("{field_}") FROM "{measurement}" WHERE time >= {since_ns}', db="chikyu"
    )
    series = res["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def _influx_times(influxd: Influxd, measurement: str, field_: str) -> np.ndarray:
    res = influxd.query(f'SELECT "{field_}" FROM "{measurement}"', db="chikyu")
    series = res["results"][0].get("series") or [{"values": []}]
    return np.array([row[0] for row in series[0]["values"]], np.int64)


def test_sigterm_exits_zero_within_bound(live: LiveRun) -> None:
    assert live.returncode == 0, live.daemon.text()[-3000:]
    assert live.stop_s < 25
    assert live.daemon.notify.seen("STOPPING", "1")


def test_notify_protocol(live: LiveRun) -> None:
    ready = live.daemon.notify.seen("READY", "1")
    assert ready and ready[0]["MAINPID"] == str(live.daemon.proc.pid)
    assert live.daemon.notify.seen("WATCHDOG", "1")
    statuses = [m["STATUS"] for m in live.daemon.notify.seen("STATUS")]
    assert any("devices ok" in s for s in statuses)
    assert any("reload rejected" in s for s in statuses)


def test_runs_on_the_chosen_event_loop(live: LiveRun) -> None:
    """uvloop by default (the live run above covers MQTT, InfluxDB, signals and the executors
    on it); $CHIKYU_DAQ_LOOP=asyncio runs this module on the stock loop."""
    want = "uvloop" if "uvloop" in loop_factory().__module__ else "asyncio"
    assert f"{want} event loop" in live.daemon.text()


def test_reload_counts_are_published_in_health(live: LiveRun) -> None:
    """The fixture's one SIGHUP with a broken file is counted in the `daq` health fields."""
    res = live.influxd.query(
        'SELECT max("reloads_rejected"), max("reloads_applied") FROM "daq"', db="chikyu"
    )
    series = res["results"][0].get("series")
    assert series, "no reload counts in the daq measurement"
    _, rejected, applied = series[0]["values"][0]
    assert (rejected, applied) == (1, 0)


def test_raw_samples_reach_recording_and_influx_exactly(live: LiveRun) -> None:
    raw = open_run(live.run_dir).raw()
    for ch in ("p101a.speed", "ft201.volume_flow", "ai20.pt101", "pt302.pressure", "dt201.density"):
        dev, name = ch.split(".")
        rec_t = raw[ch][0]
        db_t = _influx_times(live.influxd, dev, name)
        assert len(rec_t) >= 10
        # every recorded sample is in InfluxDB once (SIGTERM drained the spool), and no other
        np.testing.assert_array_equal(np.sort(db_t), np.sort(rec_t), err_msg=ch)


def test_results_flushed_and_published(live: LiveRun) -> None:
    run = open_run(live.run_dir)
    res = run.results()
    raw = run.raw(["ai20.pt101"])["ai20.pt101"][0]
    # the DSP was flushed on SIGTERM: results reach the newest sample's grid point
    assert raw[-1] - res["t_ns"][-1] < 100_000_000
    whole = res["t_ns"][res["t_ns"] % 1_000_000_000 == 0]
    assert np.array_equal(np.sort(_influx_times(live.influxd, "yield", "cum_rey_kg")), whole)
    assert len(live.mqtt_yield) == 5
    y = live.mqtt_yield[-1]
    assert y["rey_kg_h"] == pytest.approx(float(np.nanmean(res["rey_kg_h"])), rel=0.05)
    assert live.mqtt_status_after.get("state") in {"offline", "stopped"}


def test_replay_equals_live(live: LiveRun, tmp_path: Path) -> None:
    summary = replay(live.run_dir, ReplayOptions(out_dir=tmp_path, report=False))
    import pyarrow.parquet as pq

    rep = pq.read_table(tmp_path / "results.parquet").to_pydict()
    live_res = open_run(live.run_dir).results()
    common, il, ir = np.intersect1d(live_res["t_ns"], rep["t_ns"], return_indices=True)
    assert len(common) >= len(live_res["t_ns"]) - 1
    for k in ("cv", "rey_kg_h", "cum_rey_kg", "u95_cum_rey_kg", "stability_index", "q_yield"):
        np.testing.assert_array_equal(np.asarray(rep[k])[ir], live_res[k][il], err_msg=k)
    assert summary["config_differences"] == {}


def test_kill9_then_restart_loses_nothing(rig: Path, tmp_path: Path) -> None:
    (tmp_path / "influxd").mkdir()
    influxd = Influxd(tmp_path / "influxd")
    cfg = daemon_config(tmp_path / "daq.toml", influx_url=influxd.url, mqtt_port=None)
    # InfluxDB is down at first: lines pile up in the spool
    first = start_daemon(tmp_path, cfg, rig, "first")
    run1 = first.run_dirs()[0]
    wait_until(
        lambda: len(open_run(run1).raw(["p101a.speed"]).get("p101a.speed", ([],))[0]) > 15, 30
    )
    first.proc.kill()
    first.proc.wait(10)
    killed_ns = time.time_ns()
    influxd.start()
    try:
        influxd.create_db("chikyu")
        second = start_daemon(tmp_path, cfg, rig, "second")
        rec = open_run(run1).raw(["p101a.speed"])["p101a.speed"][0]
        safe = rec[rec < killed_ns - 1_000_000_000]
        assert len(safe) > 10
        wait_until(lambda: _count(influxd, "p101a", "speed") >= len(safe), 30)
        got = _influx_times(influxd, "p101a", "speed")
        assert np.isin(safe, got).all()  # everything recorded before the crash arrived
        assert len(np.unique(got)) == len(got)  # and nothing twice
        second.proc.send_signal(signal.SIGTERM)
        assert second.proc.wait(40) == 0
    finally:
        influxd.kill()


def test_sighup_with_valid_config_restarts_outputs_and_keeps_totals(
    rig: Path, tmp_path: Path
) -> None:
    cfg = daemon_config(tmp_path / "daq.toml", influx_url=None, mqtt_port=None)
    d = start_daemon(tmp_path, cfg, rig, "reload")
    try:
        (first,) = d.run_dirs()
        wait_until(lambda: len(open_run(first).results().get("t_ns", [])) > 30, 30)
        # a change outside the processing sections: outputs restart, the processor is kept
        cfg.write_text(cfg.read_text().replace("segment_s = 600.0", "segment_s = 300.0"))
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: len(d.run_dirs()) == 2, 30)
        second = d.run_dirs()[1]
        wait_until(lambda: len(open_run(second).results().get("t_ns", [])) > 10, 30)
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(40) == 0
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
    a, b = open_run(first).results(), open_run(second).results()
    assert b["t_ns"][0] > a["t_ns"][-1]  # no grid point computed twice
    assert b["cum_rey_kg"][0] >= a["cum_rey_kg"][-1] > 0  # totals carried on, not reset
    ev = [e for e in open_run(second).events() if e.get("type") == "reload"]
    assert ev and ev[0]["processor_kept"] is True and ev[0]["previous_run"] == first.name
    assert open_run(second).manifest["config"]["recorder"]["segment_s"] == 300.0
    assert d.notify.seen("RELOADING", "1")


def test_what_a_restart_cannot_fix_exits_1_with_the_reason_and_no_traceback(
    tmp_path: Path,
) -> None:
    """An endpoint for a bus the config does not have: said in one line, exit 1."""
    cfg = daemon_config(tmp_path / "daq.toml", influx_url=None, mqtt_port=None)
    endpoints = '{"nosuchbus": "127.0.0.1:1"}'
    code, text = run_cli(
        "run", "-c", str(cfg), "--data-dir", str(tmp_path), "--endpoints", endpoints
    )
    assert code == 1, text
    assert "cannot start" in text and "nosuchbus" in text, text
    assert "Traceback" not in text, text


def test_poison_lab_message_never_kills_the_daemon(rig: Path, tmp_path: Path) -> None:
    """A lab message nested 100,000 deep (issue 10: RecursionError ended the daemon, exit 1):
    the daemon stays up, keeps publishing live values, and says what happened in its health."""
    (tmp_path / "mosquitto").mkdir()
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    try:
        cfg = daemon_config(tmp_path / "daq.toml", influx_url=None, mqtt_port=broker.port)
        d = start_daemon(tmp_path, cfg, rig, "poison")
        wait_until(lambda: "mqtt connected" in d.text() or d.proc.poll() is not None, 30)
        poison = tmp_path / "poison.json"
        poison.write_text("[" * 100_000)
        topic = "chikyu/chikyu/lab/assay"
        pub = broker.tool("mosquitto_pub", "-t", topic, "-q", "1", "-f", str(poison))
        subprocess.run(pub, check=True, timeout=20)

        def noticed() -> bool:
            """The retained status says the message was rejected or the MQTT task restarted."""
            out = subprocess.run(
                broker.sub_command("chikyu/chikyu/status", 1, 5), capture_output=True, timeout=20
            )
            h: Any = json.loads(out.stdout or b"{}").get("health") or {}
            rejected = h.get("outputs", {}).get("mqtt", {}).get("assays_rejected", 0)
            failed = h.get("tasks", {}).get("mqtt", {}).get("failures", 0)
            return bool(rejected or failed)

        wait_until(lambda: d.proc.poll() is not None or noticed(), 30)
        assert d.proc.poll() is None, d.text()[-3000:]
        since = time.time_ns()
        out = subprocess.run(
            broker.sub_command("chikyu/chikyu/yield", 3, 30), capture_output=True, timeout=40
        )
        ts = [json.loads(line)["t_ns"] for line in out.stdout.decode().splitlines()]
        assert len(ts) == 3 and min(ts) > since - 2_000_000_000  # live values go on
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(40) == 0, d.text()[-3000:]
        after = subprocess.run(
            broker.sub_command("chikyu/chikyu/status", 1, 5), capture_output=True, timeout=20
        )
        assert json.loads(after.stdout)["state"] == "offline"
    finally:
        broker.kill()
