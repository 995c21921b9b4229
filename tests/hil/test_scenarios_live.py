"""Every scenario through `chikyu-daq hil run` (emulators + plant + the real pipeline), scored
against plant truth, with every output on: the fault campaign (issue 10).

All scenarios run at once, each in its own process, so CI waits for the longest one only. They
share one real influxd (a database per scenario) and one real mosquitto (a topic prefix per
scenario); an independent `mosquitto_sub` records everything published. After the runs, each
scenario passes or fails on its own:
- its bounds (JUnit per scenario), and the pipeline alive to the end with no task failure or
  step fault (`hil run`'s own survival checks);
- every raw sample of its recording in InfluxDB exactly once (count per device measurement and
  field, and the exact timestamps of one channel per device);
- yield and stability on MQTT for every second the recording has (a second replaced by a newer
  one while the broker was slow is counted as coalesced; at most 5 %), as JSON with the right
  types (ints for quality codes, floats or null for values);
- every alarm event of the recording published, the scenario's expected alarms among them;
- status retained: `online` with health while running, `offline` after the stop.

`HIL_DURATION_S=60` shortens every run for a quick local look (bounds and due alarms differ
then, and 9 start-ups on 2 cores dominate a short run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chikyu_daq.store.reader import Run, open_run
from dsp.kernel import QUALITY_FIELDS
from hil.scenario import list_scenarios, load_scenario
from tests.servers import Influxd, Mosquitto, require_binary

pytestmark = [pytest.mark.slow, pytest.mark.servers, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = list_scenarios()
#: For a quick local look only (bounds and due alarms then differ): seconds per scenario.
DURATION_S = float(os.environ.get("HIL_DURATION_S", "0")) or None
#: mosquitto_sub's output: retained flag, topic, payload (JSON has no newline).
FMT = ("-F", "%r %t %p")


def db_name(name: str) -> str:
    return f"hil_{name}"


def prefix(name: str) -> str:
    return f"hil/{name}"


@dataclass
class Message:
    retained: bool
    topic: str
    payload: str


@dataclass
class Campaign:
    influxd: Influxd
    results: dict[str, tuple[int, str, Path]]
    #: everything the independent subscriber received, per scenario
    messages: dict[str, list[Message]] = field(default_factory=dict)
    #: a fresh subscription's retained status while running, and after the stop
    status_running: dict[str, Message] = field(default_factory=dict)
    status_after: dict[str, Message] = field(default_factory=dict)

    def score(self, name: str) -> dict[str, Any]:
        return dict(json.loads((self.results[name][2] / "score.json").read_text()))

    def run(self, name: str) -> Run:
        return open_run(self.score(name)["run_dir"])

    def topic(self, name: str, suffix: str) -> list[Message]:
        want = f"{prefix(name)}/{suffix}"
        return [m for m in self.messages[name] if m.topic == want]


def _parse(line: str) -> Message | None:
    parts = line.rstrip("\n").split(" ", 2)
    if len(parts) != 3:
        return None
    return Message(parts[0] == "1", parts[1], parts[2])


def _retained_status(sub: str, port: int, n: int) -> dict[str, Message]:
    """A fresh subscription: the broker hands over each scenario's retained status."""
    out = subprocess.run(
        [
            sub,
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-t",
            "hil/+/status",
            "-C",
            str(n),
            "-W",
            "10",
            *FMT,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    found: dict[str, Message] = {}
    for line in out.splitlines():
        m = _parse(line)
        if m is not None:
            found[m.topic.split("/")[1]] = m
    return found


class HealthSeen:
    """Which scenarios have published a status with health, reading the feed incrementally."""

    def __init__(self, feed: Path) -> None:
        self.feed = feed
        self.offset = 0
        self.names: set[str] = set()

    def update(self) -> set[str]:
        with self.feed.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        self.offset += end
        for line in data[:end].decode(errors="replace").splitlines():
            m = _parse(line)
            if m and m.topic.endswith("/status") and '"health"' in m.payload:
                self.names.add(m.topic.split("/")[1])
        return self.names


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Campaign]:
    sub = require_binary("mosquitto_sub", "mosquitto-clients")
    pub = require_binary("mosquitto_pub", "mosquitto-clients")
    tmp = tmp_path_factory.mktemp("hil")
    influxd = Influxd(tmp_path_factory.mktemp("influxd"))
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    procs: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    listener: subprocess.Popen[bytes] | None = None
    influxd.start()
    broker.start()
    try:
        for name in SCENARIOS:
            influxd.create_db(db_name(name))
        feed = tmp / "mqtt.txt"
        with feed.open("wb") as f:
            listener = subprocess.Popen(
                [sub, "-h", "127.0.0.1", "-p", str(broker.port), "-t", "hil/#", "-q", "1", *FMT],
                stdout=f,
            )
        # subscribed once our own probe comes back through the broker
        deadline = time.monotonic() + 20
        while b"hil/probe" not in feed.read_bytes():
            assert time.monotonic() < deadline, "mosquitto_sub never subscribed"
            subprocess.run(
                [pub, "-h", "127.0.0.1", "-p", str(broker.port), "-t", "hil/probe", "-m", "1"],
                timeout=10,
                check=True,
            )
            time.sleep(0.2)
        t_start = time.monotonic()
        for name in SCENARIOS:
            out = tmp / name
            out.mkdir()
            cmd = [sys.executable, "-m", "chikyu_daq", "hil", "run", "--scenario", name]
            cmd += ["--data-dir", str(out / "data"), "--junit", str(out / "junit.xml")]
            cmd += ["--json", str(out / "score.json")]
            cmd += ["--duration", str(DURATION_S)] if DURATION_S else []
            cmd += ["--influx", influxd.url, "--influx-db", db_name(name)]
            cmd += ["--mqtt", f"127.0.0.1:{broker.port}", "--mqtt-prefix", prefix(name)]
            procs[name] = (
                subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO
                ),
                out,
            )
        longest = DURATION_S or max(load_scenario(n).ci_duration_s for n in SCENARIOS)
        deadline = t_start + longest + 180
        c = Campaign(influxd, {})
        # probe the retained status once every scenario has published its health
        # (or as late as every run surely still runs: test_status_retained names who did not)
        shortest = DURATION_S or min(load_scenario(n).ci_duration_s for n in SCENARIOS)
        probe_by = t_start + shortest - 30
        seen = HealthSeen(feed)
        while seen.update() < set(SCENARIOS) and time.monotonic() < probe_by:
            if any(p.poll() is not None for p, _ in procs.values()):
                break  # a run ended early: its own tests say why
            time.sleep(0.5)
        c.status_running = _retained_status(sub, broker.port, len(SCENARIOS))
        for name, (proc, out) in procs.items():
            text, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            c.results[name] = (proc.returncode, text, out)
        c.status_after = _retained_status(sub, broker.port, len(SCENARIOS))
        listener.terminate()
        listener.wait(10)
        c.messages = {name: [] for name in SCENARIOS}
        for line in feed.read_text(errors="replace").splitlines():
            m = _parse(line)
            if m is not None and m.topic.split("/")[1] in c.messages:
                c.messages[m.topic.split("/")[1]].append(m)
        yield c
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
        if listener is not None and listener.poll() is None:
            listener.kill()
        influxd.kill()
        broker.kill()


def test_scenario_list_is_complete() -> None:
    assert set(SCENARIOS) == {
        "nominal",
        "grade_change",
        "slugging",
        "plugging",
        "pump_trip",
        "density_drift",
        "sensor_faults",
        "heave",
        "comms_outage",
    }


@pytest.mark.parametrize("name", SCENARIOS)
def test_pipeline_survives_with_every_output_on(name: str, campaign: Campaign) -> None:
    _, text, _ = campaign.results[name]
    checks = campaign.score(name)["checks"]
    for check in ("pipeline alive to the end", "no task failures or step faults"):
        assert checks[check]["ok"], f"{check}: {checks[check]['detail']}\n{text[-3000:]}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_passes_its_bounds(name: str, campaign: Campaign) -> None:
    rc, text, out = campaign.results[name]
    assert rc == 0, text[-4000:]
    suite = ET.parse(out / "junit.xml").getroot()
    assert suite.get("failures") == "0"
    score = campaign.score(name)
    assert score["passed"] and score["checks"]["no Modbus writes"]["ok"]


def test_nominal_accuracy(campaign: Campaign) -> None:
    """Cumulative REY within 2 % of truth (unreferenced: see nominal.toml), truth inside the 95 % interval,
    no alarm at all."""
    score = campaign.score("nominal")
    assert abs(score["rey_error_pct"]) <= 2.0  # unreferenced densitometer: see nominal.toml
    assert score["truth_in_interval"]
    assert score["unexpected_alarms"] == []


def _influx_counts(influxd: Influxd, db: str) -> dict[str, dict[str, int]]:
    res = influxd.query("SELECT count(*) FROM /.*/", db=db)
    out: dict[str, dict[str, int]] = {}
    for s in res["results"][0].get("series", []):
        row = dict(zip(s["columns"], s["values"][0], strict=True))
        out[s["name"]] = {
            k.removeprefix("count_"): int(v) for k, v in row.items() if k != "time" and v
        }
    return out


def _influx_times(influxd: Influxd, db: str, measurement: str, field_: str) -> np.ndarray:
    res = influxd.query(f'SELECT "{field_}" FROM "{measurement}"', db=db)
    series = res["results"][0].get("series") or [{"values": []}]
    return np.array([row[0] for row in series[0]["values"]], np.int64)


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_raw_sample_in_influx_exactly_once(name: str, campaign: Campaign) -> None:
    raw = campaign.run(name).raw()
    got = _influx_counts(campaign.influxd, db_name(name))
    want: dict[str, dict[str, int]] = {}
    for ch, (t, v, _q) in raw.items():
        dev, chan = ch.split(".", 1)
        assert len(np.unique(t)) == len(t), f"{ch}: duplicate timestamps in the recording"
        fields = want.setdefault(dev, {})
        fields[chan + "_q"] = len(t)  # every sample has a quality
        if np.isfinite(v).any():
            fields[chan] = int(np.isfinite(v).sum())  # line protocol has no NaN: left out
    pending = campaign.score(name)["final_stats"]["outputs"]["influx"]
    for dev, fields in want.items():
        assert got.get(dev) == fields, (
            f"{dev}: InfluxDB holds other counts than the recording "
            f"(spool at the end: {pending})\n"
            + "\n".join(
                f"  {f}: recorded {n}, influx {got.get(dev, {}).get(f)}"
                for f, n in sorted(fields.items())
                if got.get(dev, {}).get(f) != n
            )
        )
        chan = min(f for f in fields if f.endswith("_q"))
        t_rec = raw[f"{dev}.{chan.removesuffix('_q')}"][0]
        t_db = _influx_times(campaign.influxd, db_name(name), dev, chan)
        np.testing.assert_array_equal(np.sort(t_db), np.sort(t_rec), err_msg=f"{dev}.{chan}")


def _check_types(doc: dict[str, Any], where: str) -> None:
    assert isinstance(doc.get("t"), str) and type(doc.get("t_ns")) is int, where
    for k, v in doc.items():
        if k in ("t", "t_ns"):
            continue
        if k in QUALITY_FIELDS:
            assert type(v) is int, f"{where}: quality code {k} = {v!r} is not an int"
        else:
            assert v is None or type(v) is float, f"{where}: {k} = {v!r} is not a float or null"


@pytest.mark.parametrize("name", SCENARIOS)
def test_live_values_every_second_as_typed_json(name: str, campaign: Campaign) -> None:
    """Each second of the recording is on MQTT once, in order, or was coalesced: the publisher
    keeps only the newest live value while the broker is slow, and counts each it replaced."""
    res = campaign.run(name).results()
    whole = res["t_ns"][res["t_ns"] % 1_000_000_000 == 0]
    assert len(whole) >= 0.8 * campaign.score(name)["duration_s"]
    missing = 0
    for suffix in ("yield", "stability"):
        docs = []
        for m in campaign.topic(name, suffix):
            doc = json.loads(m.payload)  # strict JSON: no NaN/Infinity
            _check_types(doc, f"{suffix} at {doc.get('t')}")
            docs.append(doc)
        t = np.array([d["t_ns"] for d in docs], np.int64)
        assert (np.diff(t) > 0).all(), f"{suffix}: out of order or twice"
        assert np.isin(t, whole).all(), f"{suffix}: seconds the recording does not have"
        missing += len(whole) - len(t)
    coalesced = campaign.score(name)["final_stats"]["outputs"]["mqtt"]["mqtt_live_coalesced"]
    assert missing == coalesced, f"{missing} seconds missing, {coalesced} counted as coalesced"
    assert coalesced <= 0.05 * 2 * len(whole), f"{coalesced} of {2 * len(whole)} coalesced"


@pytest.mark.parametrize("name", SCENARIOS)
def test_alarms_published(name: str, campaign: Campaign) -> None:
    recorded = [
        (e["alarm"], e["kind"], e["t_ns"])
        for e in campaign.run(name).events()
        if e.get("type") == "alarm"
    ]
    published = []
    events = f"{prefix(name)}/alarms/"
    for m in campaign.messages[name]:
        rest = m.topic[len(events) :] if m.topic.startswith(events) else "/"
        # one level below alarms/ is an event; active, kpi and state/<NAME> are retained states
        if "/" not in rest and rest not in {"active", "kpi"}:
            doc = json.loads(m.payload)
            assert m.topic == f"{prefix(name)}/alarms/{doc['name']}"
            published.append((doc["alarm"], doc["kind"], doc["t_ns"]))
    assert published == recorded
    sc = load_scenario(name)
    duration = campaign.score(name)["duration_s"]
    raised = {a for a, kind, _ in published if kind == "raise"}
    for exp in sc.expect.alarms:
        if exp.latest_raise_s > duration:
            continue
        label = f"{exp.name}({exp.channel})" if exp.channel else exp.name
        hits = {a for a in raised if a == label or (exp.channel is None and a.startswith(label))}
        assert hits, f"expected alarm {label} never published; published: {sorted(raised)}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_status_retained(name: str, campaign: Campaign) -> None:
    running = campaign.status_running.get(name)
    assert running is not None and running.retained, "no retained status while running"
    doc = json.loads(running.payload)
    assert doc["state"] == "online" and "tasks" in doc.get("health", {}), doc
    after = campaign.status_after.get(name)
    assert after is not None and after.retained, "no retained status after the stop"
    assert json.loads(after.payload)["state"] == "offline"
