"""Fleet ingestion: three daemons (three vessels) against three emulated rigs, writing into one
VictoriaMetrics and one mosquitto; vessels stay apart by tag, topic prefix and client id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Mosquitto, Victoria, require_binary, wait_until

pytestmark = [pytest.mark.servers, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
REFERENCE = (REPO / "config" / "reference.toml").read_text()
CLI = [sys.executable, "-m", "chikyu_daq"]
VESSELS = ("chikyu", "kaimei", "hakuho")


def vessel_config(path: Path, vessel: str, vm_url: str, mqtt_port: int) -> Path:
    """The reference installation as `vessel`, outputs at the shore's shared servers."""
    head = REFERENCE[: REFERENCE.index("[outputs.influx]")]
    head = head.replace('vessel = "chikyu"', f'vessel = "{vessel}"', 1)
    path.write_text(
        head
        + f'[outputs.influx]\nenabled = true\ndialect = "v1"\nurl = "{vm_url}"\ndb = "fleet"\n'
        + f'[outputs.mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {mqtt_port}\n'
    )
    return path


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as f:
        return subprocess.Popen(
            args, stdout=f, stderr=subprocess.STDOUT, cwd=REPO, env=dict(os.environ)
        )


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """The shared broker, logging connections unbuffered (stderr) so client ids can be read."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"), extra_conf="log_dest stderr\n")
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def fleet(victoria: Victoria, mosquitto: Mosquitto, tmp_path: Path) -> Iterator[dict[str, Path]]:
    procs: list[subprocess.Popen[bytes]] = []
    data: dict[str, Path] = {}
    try:
        for v in VESSELS:
            eps = tmp_path / f"{v}-endpoints.json"
            procs.append(_spawn([*CLI, "hil", "serve", "-c", str(REPO / "config" / "reference.toml"),
                                 "--endpoints-out", str(eps)], tmp_path / f"{v}-rig.log"))  # fmt: skip
            wait_until(eps.exists, 60)
            cfg = vessel_config(tmp_path / f"{v}.toml", v, victoria.url, mosquitto.port)
            data[v] = tmp_path / v
            procs.append(_spawn([*CLI, "run", "-c", str(cfg), "--data-dir", str(data[v]),
                                 "--endpoints", str(eps)], tmp_path / f"{v}-daq.log"))  # fmt: skip
        yield data
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def vm_query(victoria: Victoria, promql: str) -> list[dict]:
    url = f"{victoria.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=10) as r:
        return list(json.loads(r.read())["data"]["result"])


def test_three_vessels_share_one_store_and_one_broker_without_crossing(
    fleet: dict[str, Path], victoria: Victoria, mosquitto: Mosquitto
) -> None:
    sub = require_binary("mosquitto_sub", "mosquitto-clients")

    def messages(topic: str, count: int) -> list[str]:
        out = subprocess.run(
            [sub, "-h", "127.0.0.1", "-p", str(mosquitto.port), "-t", topic, "-v",
             "-C", str(count), "-W", "90"],
            capture_output=True, timeout=100,
        )  # fmt: skip
        return [line.split(b" ", 1)[0].decode() for line in out.stdout.splitlines()]

    for v in VESSELS:  # each vessel publishes under its own prefix
        got = messages(f"chikyu/{v}/yield", 2)
        log = (fleet[v].parent / f"{v}-daq.log").read_text(errors="replace")[-3000:]
        assert got == [f"chikyu/{v}/yield"] * 2, log
    topics = messages("chikyu/#", 30)
    assert len(topics) == 30 and {t.split("/")[1] for t in topics} <= set(VESSELS), topics
    run_ids = {v: next((d / "runs").iterdir()).name for v, d in fleet.items()}

    # each vessel's results carry its own vessel and run tags, and only those
    def cum_series() -> list[dict]:
        return vm_query(victoria, "last_over_time(yield_cum_rey_kg[10m])")

    wait_until(lambda: len({s["metric"].get("vessel") for s in cum_series()}) == 3, 60, 0.5)
    for s in cum_series():
        m = s["metric"]
        assert m["run"] == run_ids[m["vessel"]], m
    # raw samples too: per-vessel series of one channel, each from its own run
    for v in VESSELS:
        series = vm_query(victoria, f'last_over_time(ft201_volume_flow{{vessel="{v}"}}[10m])')
        assert [s["metric"]["run"] for s in series] == [run_ids[v]]
    # the per-vessel dashboard query: one answer per vessel
    per_vessel = vm_query(victoria, "max by (vessel) (last_over_time(yield_cum_rey_kg[10m]))")
    assert sorted(s["metric"]["vessel"] for s in per_vessel) == sorted(VESSELS)
    # one client id per vessel on the broker (none collided and kicked another off)
    log = mosquitto.log_path.read_text(errors="replace")
    for v in VESSELS:
        assert f"as chikyu-daq-{v}" in log
    assert "already connected" not in log
