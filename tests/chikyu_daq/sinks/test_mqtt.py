"""MQTT publisher against a real mosquitto: retained status, will, reconnect, assays."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from chikyu_daq.config.model import Mqtt
from chikyu_daq.sinks.assay import Assay
from chikyu_daq.sinks.mqtt import MqttPublisher
from tests.servers import Mosquitto, until

pytestmark = pytest.mark.servers
REPO = Path(__file__).resolve().parents[3]
PREFIX = "chikyu/testvessel"
SAMPLED_AT = (datetime.now(UTC) - timedelta(hours=1)).isoformat()  # within the accepted window
GOOD = {
    "sample_id": "MTS-26-0142",
    "sampled_at": SAMPLED_AT,
    "rey_ppm": 2150.0,
    "u_rey_ppm": 120.0,
}


def sub_retained(m: Mosquitto, topic: str, timeout_s: int = 5) -> Any:
    """The retained message on `topic`, read by mosquitto_sub (a separate client)."""
    out = subprocess.run(
        m.sub_command(topic, 1, timeout_s), capture_output=True, text=True, timeout=timeout_s + 5
    )
    assert out.returncode == 0, f"no retained message on {topic}: {out.stderr}"
    return json.loads(out.stdout)


def cfg(m: Mosquitto) -> Mqtt:
    return Mqtt(enabled=True, host=m.host, port=m.port, keepalive_s=5)


async def post(m: Mosquitto, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client(m.host, m.port, identifier="lab-bench") as lab:
        await lab.publish(topic, payload, qos=1)


def test_broker_restart_reconnects_resubscribes_and_republishes(mosquitto: Mosquitto) -> None:
    assays: list[Assay] = []
    received: list[tuple[str, Any]] = []

    async def main() -> None:
        pub = MqttPublisher(cfg(mosquitto), PREFIX, on_assay=assays.append, backoff_max_s=1.0)
        pub.set_status({"run": "r1", "note": "first"})
        pub.set_active_alarms(["SLUGGING"])
        task = asyncio.create_task(pub.run())
        await until(lambda: pub.connected and not pub._dirty, 10)
        await asyncio.to_thread(mosquitto.stop)
        await until(lambda: not pub.connected, 10)
        # While the broker is away: alarms queue, live values coalesce, status changes.
        for i in range(5):
            pub.publish_yield({"rey_kg_h": float(i)})
        pub.publish_alarm({"name": "PUMP_SURGE", "state": "raised", "t_ns": 1})
        pub.publish_alarm({"name": "PUMP_SURGE", "state": "cleared", "t_ns": 2})
        pub.set_status({"run": "r1", "note": "second"})
        await asyncio.to_thread(mosquitto.start)

        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="watcher") as w:
            await w.subscribe(f"{PREFIX}/#", qos=1)
            await until(lambda: pub.connects >= 2 and pub.stats()["mqtt_events_pending"] == 0, 20)

            async def collect() -> None:
                async for msg in w.messages:
                    received.append((str(msg.topic), json.loads(bytes(msg.payload))))

            collector = asyncio.create_task(collect())
            await post(mosquitto, f"{PREFIX}/lab/assay", json.dumps(GOOD).encode())
            await until(lambda: len(assays) == 1, 10)
            pub.publish_stability({"cv": 0.05, "nan": float("nan")})
            await until(lambda: any(t.endswith("stability") for t, _ in received), 10)
            collector.cancel()
        await pub.aclose()
        await task

    asyncio.run(main())
    assert assays[0].sample_id == "MTS-26-0142"  # resubscribed after the restart
    status = sub_retained(mosquitto, f"{PREFIX}/status")
    assert status["state"] == "offline" and status["note"] == "second"
    assert sub_retained(mosquitto, f"{PREFIX}/alarms/active") == ["SLUGGING"]
    stability = [p for t, p in received if t.endswith("/stability")]
    assert stability == [{"cv": 0.05, "nan": None}]


def test_pending_alarms_and_coalesced_yield_after_restart(mosquitto: Mosquitto) -> None:
    """Start with the broker down: alarms wait in order, yield coalesces to the newest."""
    got: list[tuple[str, Any]] = []

    async def main() -> None:
        await asyncio.to_thread(mosquitto.stop)
        pub = MqttPublisher(cfg(mosquitto), PREFIX, backoff_max_s=0.5)
        task = asyncio.create_task(pub.run())
        for i in range(50):
            pub.publish_yield({"i": i})
        for i in range(20):
            pub.publish_alarm({"name": "SLUGGING", "seq": i})
        await until(lambda: pub.stats()["mqtt_connects"] == 0 and pub.last_error != "", 10)
        await asyncio.to_thread(mosquitto.start)
        # A persistent-session subscriber that is already there when the publisher connects.
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="w2") as w:
            await w.subscribe(f"{PREFIX}/#", qos=1)

            async def collect() -> None:
                async for msg in w.messages:
                    got.append((str(msg.topic), json.loads(bytes(msg.payload))))

            collector = asyncio.create_task(collect())
            await until(lambda: sum(t.endswith("SLUGGING") for t, _ in got) == 20, 20)
            await until(lambda: any(t.endswith("/yield") for t, _ in got), 10)
            collector.cancel()
        await pub.aclose()
        await task
        assert pub.live_coalesced == 49

    asyncio.run(main())
    assert [p["seq"] for t, p in got if t.endswith("alarms/SLUGGING")] == list(range(20))
    assert [p for t, p in got if t.endswith("/yield")] == [{"i": 49}]


def test_bad_assays_are_counted_and_never_applied(mosquitto: Mosquitto) -> None:
    applied: list[Assay] = []
    bad = [
        b"not json",
        b"[1, 2]",
        json.dumps({**GOOD, "rey_ppm": -5}).encode(),
        json.dumps({**GOOD, "sampled_at": SAMPLED_AT[:19]}).encode(),  # no timezone
        json.dumps({**GOOD, "extra": 1}).encode(),
        json.dumps({k: v for k, v in GOOD.items() if k != "u_rey_ppm"}).encode(),
    ]

    async def main() -> None:
        pub = MqttPublisher(cfg(mosquitto), PREFIX, on_assay=applied.append)
        task = asyncio.create_task(pub.run())
        await until(lambda: pub.subscribed, 10)
        for payload in bad:
            await post(mosquitto, f"{PREFIX}/lab/assay", payload)
        await post(mosquitto, f"{PREFIX}/lab/assay", json.dumps(GOOD).encode())
        await until(lambda: pub.assays_accepted + pub.assays_rejected == len(bad) + 1, 10)
        await pub.aclose()
        await task
        assert pub.assays_rejected == len(bad)

    asyncio.run(main())
    assert [a.rey_ppm for a in applied] == [2150.0]


CHILD = r"""
import asyncio, sys
from chikyu_daq.config.model import Mqtt
from chikyu_daq.sinks.mqtt import MqttPublisher
async def main():
    pub = MqttPublisher(Mqtt(enabled=True, host="127.0.0.1", port=int(sys.argv[1]), keepalive_s=5),
                        "chikyu/testvessel")
    pub.set_status({"pid": "child"})
    task = asyncio.create_task(pub.run())
    while not (pub.connected and not pub._dirty):
        await asyncio.sleep(0.02)
    print("online", flush=True)
    await task
asyncio.run(main())
"""


def test_last_will_seen_by_mosquitto_sub_when_publisher_is_killed(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, str(script), str(mosquitto.port)], stdout=subprocess.PIPE, env=env,
        text=True,
    )  # fmt: skip
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "online"
    sub = subprocess.Popen(
        mosquitto.sub_command(f"{PREFIX}/status", 2, 20), stdout=subprocess.PIPE, text=True
    )
    assert sub.stdout is not None
    first = json.loads(sub.stdout.readline())
    assert first == {"pid": "child", "state": "online"}
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    second = json.loads(sub.stdout.readline())
    assert second == {"state": "offline"}
    assert sub.wait(10) == 0
    assert sub_retained(mosquitto, f"{PREFIX}/status") == {"state": "offline"}
