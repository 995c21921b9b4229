"""The seawater reference on operator command (DESIGN "Estimators"): validated (a bad command is
rejected with its reason, counted, never applied), then through the real daemon over a real
mosquitto and the CLI: recorded as applied, its outcome published, and a replay of the run
reproduces it point for point."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chikyu_daq.interfaces.commands import ACTION, CommandError, ReferenceCommands, parse_reference
from chikyu_daq.store.events import SeawaterReference
from chikyu_daq.store.reader import open_run
from dsp.params import REF_COLLECTING, REF_MUD, REF_STATES
from tests.chikyu_daq.alarms.daemon_operator import MqttOperator, control_cli
from tests.chikyu_daq.live.live_vs_replay import daemon_on_broker, replay_equals_live, stop
from tests.chikyu_daq.live.test_daemon import Daemon, rig
from tests.servers import Mosquitto, wait_until

__all__ = ["rig"]  # the module-scoped emulator fixture, shared with test_daemon

PREFIX = "chikyu/chikyu"
GOOD = {"action": ACTION, "operator": "sato", "reason": "intake closed", "duration_s": 60}


@pytest.mark.parametrize(
    ("change", "reason", "says"),
    [
        ({"operator": None}, "schema", "needs operator"),
        ({"duration_s": 5}, "range", "duration_s must be 20..3600"),
        ({"duration_s": True}, "schema", "duration_s must be a number"),
        ({"duration_s": float("nan")}, "schema", "duration_s must be a number"),
        ({"reason": "a\nb"}, "schema", "reason must be 1-200 printable"),
        ({"valve": "V-12"}, "schema", "unknown key(s): valve"),
    ],
)
def test_bad_commands_are_rejected_with_their_reason_and_counted(
    change: dict[str, Any], reason: str, says: str
) -> None:
    doc = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(CommandError) as err:
        parse_reference(doc, 0)
    assert err.value.reason == reason and says in str(err.value)
    taken: list[SeawaterReference] = []
    cmds = ReferenceCommands(taken.append)
    reply = cmds.command({**doc, "id": "c9"}, 0)
    assert reply["accepted"] is False and says in reply["reason"] and reply["id"] == "c9"
    assert taken == [] and cmds.stats() == {"accepted": 0, "rejected": {reason: 1}}
    assert cmds.command(GOOD, 7)["accepted"]
    assert taken == [SeawaterReference(7, 60.0, "sato", "intake closed")]


class Operator(MqttOperator):
    """Watches the yield feed's commanded-reference state, sends reference commands."""

    def __init__(self, port: int) -> None:
        self.states: list[float] = []
        super().__init__(port, [f"{PREFIX}/cmd/reference/reply", f"{PREFIX}/yield"])

    def take(self, topic: str, doc: dict[str, Any]) -> None:
        if doc.get("ref_cmd_state") is not None:
            self.states.append(doc["ref_cmd_state"])

    def send(self, payload: bytes | dict[str, Any]) -> dict[str, Any]:
        return self.command(f"{PREFIX}/cmd/reference/seawater", payload)


def _health(broker: Mosquitto) -> dict[str, Any]:
    """The daemon's health, as its retained status carries it."""
    out = subprocess.run(
        broker.sub_command(f"{PREFIX}/status", 1, 5), capture_output=True, timeout=20
    )
    return dict(json.loads(out.stdout or b"{}").get("health") or {})


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return control_cli("seawater-reference", data_dir, *args)


@pytest.mark.servers
@pytest.mark.slow
def test_commanded_over_mqtt_and_cli_recorded_published_and_replayed(
    rig: Path, tmp_path: Path
) -> None:
    """The emulated rig lifts mud (return 330, injection 300 m3/h): the command is accepted,
    collects, and is refused for that reason, live and in the replay alike."""
    with daemon_on_broker(tmp_path, rig, "reference") as (d, broker):
        op = Operator(broker.port)
        try:
            _operate(d, broker, op)
        finally:
            op.close()
    (run_dir,) = d.run_dirs()
    refs = [e for e in open_run(run_dir).records() if isinstance(e, SeawaterReference)]
    assert [(e.operator, e.duration_s) for e in refs] == [("sato", 20.0), ("ito", 20.0)]
    columns = ("ref_cmd_state", "rho_zero_kg_m3", "referenced", "cum_rey_kg")
    states = replay_equals_live(run_dir, tmp_path / "replay", columns)["ref_cmd_state"]
    assert REF_COLLECTING in states and states[-1] == REF_MUD


def _operate(d: Daemon, broker: Mosquitto, op: Operator) -> None:
    """Bad commands, then a good one over MQTT, restarted from the CLI; the daemon stopped."""
    assert "not JSON" in op.send(b"{nope")["reason"]
    assert "expected a JSON object" in op.send(b"[1]")["reason"]
    r = op.send({"operator": "sato", "reason": "x", "duration_s": 5, "id": "c1"})
    assert r["accepted"] is False and r["id"] == "c1" and "20..3600" in r["reason"]
    p = cli(d.data_dir, "--for", "1e9", "--operator", "ito", "--reason", "x")
    assert p.returncode == 1 and "duration_s must be" in p.stderr
    r = op.send({"operator": "sato", "reason": "intake closed", "duration_s": 20})
    assert r["accepted"] is True and r["duration_s"] == 20.0
    wait_until(lambda: REF_COLLECTING in op.states, 30)
    # the CLI restarts the window (the newest command wins)
    p = cli(d.data_dir, "--for", "20", "--operator", "ito", "--reason", "closed again")
    assert p.returncode == 0 and "commanded for 20 s" in p.stdout, p.stderr
    wait_until(lambda: op.states and op.states[-1] == REF_MUD, 60)
    assert REF_STATES[REF_MUD] in d.text()  # the reason, logged
    # the health counts every command by outcome, the bad ones by class (not JSON or not an
    # object, out of range), whether from MQTT or the CLI
    counts = {"accepted": 2, "rejected": {"json": 2, "range": 2}}
    wait_until(lambda: _health(broker).get("reference_commands") == counts, 20)
    stop(d)


#: (payload on cmd/reference/seawater, the rejection's class, what its reason says)
BAD_PAYLOADS = [
    (b"{nope", "json", "not JSON"),
    (b"", "json", "not JSON"),
    (b"\xff\xfe", "json", "not UTF-8"),
    (b"[" * 100_000, "json", "payload of 100000 bytes"),
    (b"[[[[[1]]]]]", "json", "nested deeper"),
    (b'["seawater", 60]', "json", "expected a JSON object, got list"),
    (b"null", "json", "expected a JSON object, got NoneType"),
    (json.dumps({**GOOD, "duration_s": "60"}).encode(), "schema", "duration_s must be a number"),
    (json.dumps({**GOOD, "operator": 7}).encode(), "schema", "operator must be"),
    (json.dumps({**GOOD, "duration_s": 3601}).encode(), "range", "20..3600"),
    (json.dumps({"reason": "x", "duration_s": 60}).encode(), "schema", "needs operator"),
    (json.dumps({"operator": "sato", "duration_s": 60}).encode(), "schema", "needs reason"),
]


@pytest.mark.servers
def test_every_bad_payload_on_the_topic_is_counted_and_logged_by_the_command(
    mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Over a real broker, the link as the daemon runs it: each bad payload (unreadable, not an
    object, wrong types, out of range, a key missing) is rejected with its reason in the reply,
    counted under the reference command's own rejections by class and logged; the link goes on
    and applies the good command after them."""
    import asyncio

    from chikyu_daq.alarms.mqtt_link import AlarmMqttLink
    from chikyu_daq.config.model import Mqtt

    taken: list[SeawaterReference] = []
    cmds = ReferenceCommands(taken.append)
    cfg = Mqtt(enabled=True, port=mosquitto.port, client_id="ref-test")
    link = AlarmMqttLink(cfg, PREFIX, "chikyu", lambda doc: cmds.command(doc, 5))
    op = Operator(mosquitto.port)

    async def main() -> list[dict[str, Any]]:
        task = asyncio.create_task(link.run())
        try:
            await asyncio.to_thread(wait_until, lambda: link.connected, 10)
            replies = []
            for payload, _, _ in BAD_PAYLOADS:  # in order: each reply before the next
                replies.append(await asyncio.to_thread(op.send, payload))
            replies.append(await asyncio.to_thread(op.send, GOOD))
            return replies
        finally:
            task.cancel()

    caplog.set_level("WARNING", logger="chikyu_daq.interfaces.commands")
    try:
        replies = asyncio.run(main())
    finally:
        op.close()
    for (_, _, says), reply in zip(BAD_PAYLOADS, replies, strict=False):
        assert reply["accepted"] is False and says in reply["reason"], (says, reply)
    assert replies[-1]["accepted"] is True
    assert taken == [SeawaterReference(5, 60.0, "sato", "intake closed")]
    want: dict[str, int] = {}
    for _, why, _ in BAD_PAYLOADS:
        want[why] = want.get(why, 0) + 1
    assert cmds.stats() == {"accepted": 1, "rejected": want}
    logged = [r.getMessage() for r in caplog.records if "command rejected" in r.getMessage()]
    assert len(logged) == len(BAD_PAYLOADS)
    for (_, _, says), line in zip(BAD_PAYLOADS, logged, strict=True):
        assert says in line
