"""Faults and hostile input on the MQTT side, against a real mosquitto (issue 10, items 1, 2, 7).

A BAD return flow reaches MQTT as null (with MQTT on, the flow used to be cast with `int()`);
hostile lab messages are rejected by reason and never end the task; retained assays apply once;
a cancelled publisher leaves `offline` retained, not `online`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest

from chikyu_daq.config.model import Config, Mqtt, load_config
from chikyu_daq.live.processor import Processor
from chikyu_daq.sinks.assay import Assay
from chikyu_daq.sinks.fanout import Outputs
from chikyu_daq.sinks.mqtt import MqttPublisher
from chikyu_daq.store.events import AssayEvent
from dsp.fields import FIELD_BY_NAME, STABILITY_FIELDS, YIELD_FIELDS
from dsp.quality import BAD
from tests.servers import Mosquitto, until

pytestmark = pytest.mark.servers
REPO = Path(__file__).resolve().parents[3]
PREFIX = "chikyu/faultvessel"
TOPIC = f"{PREFIX}/lab/assay"
FLOW = 329.87  # m3/h: a live flow that truncation would turn into 329


def assay(sample_id: str, hours_ago: float = 1.0, **change: object) -> bytes:
    when = (datetime.now(UTC) - timedelta(hours=hours_ago)).isoformat()
    doc = {"sample_id": sample_id, "sampled_at": when, "rey_ppm": 2500.0, "u_rey_ppm": 100.0}
    return json.dumps({**doc, **change}).encode()


def mqtt_cfg(m: Mosquitto) -> Mqtt:
    return Mqtt(enabled=True, host=m.host, port=m.port, keepalive_s=5, prefix=PREFIX)


async def publish_all(m: Mosquitto, payloads: list[bytes], *, retain: bool = False) -> None:
    async with aiomqtt.Client(m.host, m.port, identifier="lab-bench") as lab:
        for p in payloads:
            await lab.publish(TOPIC, p, qos=1, retain=retain)


class Watcher:
    """A second client that records every message under the prefix."""

    def __init__(self, m: Mosquitto) -> None:
        self.client = aiomqtt.Client(m.host, m.port, identifier="watcher")
        self.got: list[tuple[str, bytes, bool]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        await self.client.__aenter__()
        await self.client.subscribe(f"{PREFIX}/#", qos=1)
        self._task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        async for msg in self.client.messages:
            assert isinstance(msg.payload, bytes)
            self.got.append((str(msg.topic), msg.payload, msg.retain))

    def on(self, suffix: str) -> list[bytes]:
        return [p for t, p, _ in self.got if t == f"{PREFIX}/{suffix}"]

    def grew(self, *suffixes: str) -> Callable[[], bool]:
        """A condition: each of these topics got a new message since now."""
        before = {s: len(self.on(s)) for s in suffixes}
        return lambda: all(len(self.on(s)) > n for s, n in before.items())

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self.client.__aexit__(None, None, None)


async def retained_status(m: Mosquitto) -> Any:
    async with aiomqtt.Client(m.host, m.port, identifier="status-reader") as c:
        await c.subscribe(f"{PREFIX}/status", qos=1)
        async with asyncio.timeout(5):
            async for msg in c.messages:
                assert isinstance(msg.payload, bytes) and msg.retain
                return json.loads(msg.payload)


def no_nan(token: str) -> Any:
    raise AssertionError(f"{token} is not JSON")


# -- item 1: a BAD return flow with MQTT on ---------------------------------------------------
def config_for(m: Mosquitto) -> Config:
    cfg = load_config(REPO / "config" / "reference.toml")
    outputs = cfg.outputs.model_copy(update={"mqtt": mqtt_cfg(m)})
    recorder = cfg.recorder.model_copy(update={"enabled": False})
    return cfg.model_copy(update={"outputs": outputs, "recorder": recorder})


def processed_with_bad_return_flow(cfg: Config) -> tuple[Any, Processor]:
    """Real DSP output: FT-201 reads 329.87 m3/h, then goes BAD (NaN) for the second half."""
    proc = Processor(cfg)
    n = 40
    t = 1_800_000_000_000_000_000 + np.arange(n, dtype=np.int64) * 100_000_000
    for ch in proc.channels:
        v = np.full(n, FLOW if ch == cfg.roles.q_return else 1000.0)
        q = np.zeros(n, np.uint8)
        if ch == cfg.roles.q_return:
            v[n // 2 :], q[n // 2 :] = np.nan, BAD
        proc.feed(ch, t, v, q)
    processed = proc.flush()
    assert processed is not None
    return processed, proc


def test_bad_return_flow_reaches_mqtt_as_null_with_integer_quality(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    cfg = config_for(mosquitto)
    processed, _ = processed_with_bad_return_flow(cfg)
    qret = processed.columns["q_return_m3_h"]
    rows = [0, len(qret) - 1]
    assert qret[rows[0]] == FLOW and np.isnan(qret[rows[1]])  # the fault is in the input

    async def main() -> list[bytes]:
        outputs = Outputs(cfg, data_dir=tmp_path, mqtt_enabled=True, influx_enabled=False)
        await outputs.start()
        tasks = outputs.tasks()
        async with Watcher(mosquitto) as w:
            await until(lambda: outputs.mqtt.connected, 10)
            for i in rows:  # publish one, wait for it: live values coalesce to the newest
                grew = w.grew("yield", "stability")
                outputs.publish_row(int(processed.t_ns[i]), processed.columns, i)
                await until(grew, 10)
            await outputs.aclose()
            await asyncio.gather(*tasks)
            assert not any(t.exception() for t in tasks)
            return w.on("yield") + w.on("stability")[-1:]

    good, bad, stability = (json.loads(p, parse_constant=no_nan) for p in asyncio.run(main()))
    assert good["q_return_m3_h"] == FLOW  # not truncated to 329
    assert bad["q_return_m3_h"] is None  # NaN as null: valid JSON
    assert bad["q_yield"] == BAD and type(bad["q_yield"]) is int
    for doc, names in ((bad, YIELD_FIELDS), (stability, STABILITY_FIELDS)):
        assert set(names) <= set(doc)
        for name in names:
            want = int if FIELD_BY_NAME[name].dtype == "uint8" else float
            assert doc[name] is None or type(doc[name]) is want, name


# -- item 2 and 7: hostile lab messages ---------------------------------------------------------
HOSTILE: list[tuple[bytes, str]] = [
    (b"[" * 100_000, "size"),
    (b"[" * 1_000, "depth"),
    (b"\xff\xfe", "encoding"),
    (b"{", "json"),
    (assay("Y9999", sampled_at="9999-12-31T23:59:59Z"), "window"),
    (assay("Y9999-off", sampled_at="9999-12-31T23:59:59-01:00"), "schema"),
    (assay("MEGA", rey_ppm=1e6), "range"),
    (assay("HUGE", rey_ppm=1e308), "range"),
    (assay("U0", u_rey_ppm=0.0), "schema"),
    (b"x" * 200_000, "size"),
]
FUTURE_FLOOD = [assay(f"F{i}", hours_ago=-(24 * 365 * 74), rey_ppm=40_000.0) for i in range(300)]


def test_hostile_lab_messages_are_counted_logged_and_never_applied(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="chikyu_daq.sinks.mqtt")
    applied: list[Assay] = []
    real = assay("REAL-1")

    async def main() -> MqttPublisher:
        pub = MqttPublisher(mqtt_cfg(mosquitto), PREFIX, on_assay=applied.append)
        task = asyncio.create_task(pub.run())
        await until(lambda: pub.subscribed, 10)
        await publish_all(mosquitto, [real])
        await until(lambda: len(applied) == 1, 10)
        await publish_all(mosquitto, [p for p, _ in HOSTILE] + FUTURE_FLOOD + [real])
        total = 1 + len(HOSTILE) + len(FUTURE_FLOOD) + 1
        await until(lambda: pub.assays_accepted + pub.assays_rejected == total, 20)
        assert pub.connects == 1 and not task.done()  # never reconnected, never died
        await publish_all(mosquitto, [assay("REAL-2", hours_ago=0.5)])
        await until(lambda: len(applied) == 2, 10)  # still reading after all that
        await pub.aclose()
        await task
        return pub

    pub = asyncio.run(main())
    assert [a.sample_id for a in applied] == ["REAL-1", "REAL-2"]
    reasons = pub.stats()["assays_rejected_reasons"]
    expected: dict[str, int] = {}
    for _, reason in HOSTILE:
        expected[reason] = expected.get(reason, 0) + 1
    expected["window"] += len(FUTURE_FLOOD)
    expected["duplicate"] = 1  # REAL-1 again
    assert reasons == expected
    assert pub.assays_rejected == sum(expected.values())
    lines = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(lines) == len(expected)  # one line per reason within LOG_EVERY_S, not 312
    assert {line.split("(")[1].split(")")[0] for line in lines} == set(expected)
    assert any("in the future" in line for line in lines)


def test_held_back_rejections_are_counted_in_the_next_line(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="chikyu_daq.sinks.mqtt")

    async def main() -> None:
        pub = MqttPublisher(mqtt_cfg(mosquitto), PREFIX, log_every_s=0.3)
        task = asyncio.create_task(pub.run())
        await until(lambda: pub.subscribed, 10)
        await publish_all(mosquitto, [assay(f"M{i}", rey_ppm=1e6) for i in range(20)])
        await until(lambda: pub.assays_rejected == 20, 10)
        await asyncio.sleep(0.35)  # let the throttle period pass (time is what is under test)
        await publish_all(mosquitto, [assay("M-last", rey_ppm=1e6)])
        await until(lambda: pub.assays_rejected == 21, 10)
        await pub.aclose()
        await task

    asyncio.run(main())
    lines = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
    assert len(lines) == 2
    assert "19 more range rejections not logged" in lines[1]


@pytest.mark.parametrize("poison", [False, True], ids=["valid", "year-9999"])
def test_retained_assay_applies_once_across_reconnects(mosquitto: Mosquitto, poison: bool) -> None:
    """Retained assays are accepted deliberately (they restore the grade after a restart), once;
    a poisonous retained one is rejected at every (re)subscription and never stops the task."""
    payload = assay("RET-1", sampled_at="9999-12-31T23:59:59Z") if poison else assay("RET-1")
    applied: list[Assay] = []

    async def main() -> MqttPublisher:
        await publish_all(mosquitto, [payload], retain=True)
        pub = MqttPublisher(mqtt_cfg(mosquitto), PREFIX, on_assay=applied.append)
        task = asyncio.create_task(pub.run())
        await until(lambda: pub.assays_accepted + pub.assays_rejected == 1, 10)
        # Another client takes over our client id: the broker drops us, we reconnect and
        # subscribe again, and the broker delivers the retained assay a second time.
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier=pub.client_id):
            pass
        await until(lambda: pub.connects >= 2 and pub.subscribed, 15)
        seen = lambda: pub.assays_rejected + pub.assays_retained_repeats  # noqa: E731
        await until(lambda: seen() == (2 if poison else 1), 10)
        await publish_all(mosquitto, [b""], retain=True)  # the lab clears the retained assay
        await until(lambda: pub.assays_cleared == 1, 10)
        assert not task.done()
        await pub.aclose()
        await task
        return pub

    pub = asyncio.run(main())
    if poison:
        assert applied == [] and pub.assays_rejected_reasons == {"window": 2}
    else:
        assert [a.sample_id for a in applied] == ["RET-1"]
        assert pub.assays_retained_repeats == 1 and pub.assays_rejected == 0


# -- the last will on every way out ---------------------------------------------------------------
def test_cancelled_publisher_leaves_offline_retained(mosquitto: Mosquitto) -> None:
    """A clean disconnect suppresses the will: the way out must publish `offline` itself."""

    async def main() -> Any:
        pub = MqttPublisher(mqtt_cfg(mosquitto), PREFIX)
        pub.set_status({"run": "r-cancel"})
        task = asyncio.create_task(pub.run())
        await until(lambda: pub.connected and not pub._dirty, 10)
        assert (await retained_status(mosquitto))["state"] == "online"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await retained_status(mosquitto)

    assert asyncio.run(main()) == {"run": "r-cancel", "state": "offline"}


def test_a_failing_message_handler_is_counted_and_the_next_message_read(
    mosquitto: Mosquitto,
) -> None:
    """The per-message guard: whatever escapes one message's handling, the task reads on."""
    applied: list[Assay] = []

    class Flaky(MqttPublisher):
        def _on_message(self, message: aiomqtt.Message) -> None:
            if message.payload == b"boom":
                raise RecursionError("maximum recursion depth exceeded")
            super()._on_message(message)

    async def main() -> MqttPublisher:
        pub = Flaky(mqtt_cfg(mosquitto), PREFIX, on_assay=applied.append)
        task = asyncio.create_task(pub.run())
        await until(lambda: pub.subscribed, 10)
        await publish_all(mosquitto, [b"boom", assay("AFTER-1")])
        await until(lambda: len(applied) == 1, 10)
        assert pub.connects == 1
        await pub.aclose()
        await task
        return pub

    pub = asyncio.run(main())
    assert pub.stats()["mqtt_message_errors"] == 1


def test_future_dated_flood_cannot_evict_the_real_assay(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """1,000 assays dated 2100 used to push the real 2,500 ppm one out of the 256 the chain keeps
    (`dsp.chain.ASSAY_CAPACITY`), so the grade fell back to the default. Now they never get in."""
    cfg = config_for(mosquitto)
    proc = Processor(cfg)
    default = cfg.grade.default_rey_ppm
    assert default != 2500.0

    def apply(ev: AssayEvent) -> None:
        proc.add_assay(ev.t_ns, ev.rey_ppm, ev.u_rey_ppm)  # what the pipeline does with one

    flood = [assay(f"FL{i}", hours_ago=-(24 * 365 * 74), rey_ppm=40_000.0) for i in range(1000)]

    async def main() -> Outputs:
        outputs = Outputs(
            cfg, data_dir=tmp_path, on_assay=apply, mqtt_enabled=True, influx_enabled=False
        )
        await outputs.start()
        tasks = outputs.tasks()
        pub = outputs.mqtt
        await until(lambda: pub.subscribed, 10)
        await publish_all(mosquitto, [assay("REAL-2500"), *flood])
        await until(lambda: pub.assays_accepted + pub.assays_rejected == 1 + len(flood), 20)
        await outputs.aclose()
        await asyncio.gather(*tasks)
        return outputs

    outputs = asyncio.run(main())
    assert outputs.assays_applied == 1
    assert outputs.mqtt.stats()["assays_rejected_reasons"] == {"window": len(flood)}
    n = 20
    t = time.time_ns() + np.arange(n, dtype=np.int64) * 100_000_000
    for ch in proc.channels:
        proc.feed(ch, t, np.full(n, 1000.0), np.zeros(n, np.uint8))
    processed = proc.flush()
    assert processed is not None
    assert np.all(processed.columns["grade_ppm"] == 2500.0)
