"""The live alarm manager without a daemon: commands, the state file, restart reconciliation,
and the control socket over a real unix socket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from chikyu_daq.alarms.control import ControlError, ControlServer, request
from chikyu_daq.alarms.manager import AlarmManager, Sinks
from chikyu_daq.store.events import Transition
from dsp.alarms import AlarmEvent
from tests.iface_servers import reference

S = 1_000_000_000
T0 = 1_800_000_000 * S


def manager(tmp_path: Path, recorded: list[Transition] | None = None) -> AlarmManager:
    sinks = Sinks(record=recorded.append if recorded is not None else None)
    return AlarmManager(reference(), tmp_path, sinks, T0)


def test_commands_validated_with_reasons(tmp_path: Path) -> None:
    m = manager(tmp_path)
    m.on_events([AlarmEvent(T0, "SLUGGING", "raise", 0.7)], ["SLUGGING"], T0)
    bad = [
        ("nope", "expected a JSON object"),
        ({"action": "ack", "alarm": "SLUGGING", "operator": "x\ny"}, "printable"),
        ({"action": "ack", "alarm": "SLUGGING", "operator": "a", "force": 1}, "unknown key"),
        ({"action": "shelve", "alarm": "SLUGGING", "operator": "a"}, "shelve needs reason"),
        ({"action": "shelve", "alarm": "SLUGGING", "operator": "a", "reason": "r"}, "one_shot"),
        (
            {"action": "shelve", "alarm": "SLUGGING", "operator": "a", "reason": "r",
             "duration_s": "10"},
            "number of seconds",
        ),
    ]  # fmt: skip
    for doc, why in bad:
        reply = m.command(doc, T0 + S)
        assert reply["accepted"] is False and why in reply["reason"], (doc, reply)
    assert m.book.get("SLUGGING").state == "active_unacked"
    assert m.commands_rejected == len(bad)
    ok = m.command({"action": "ack", "alarm": "SLUGGING", "operator": "sato", "id": 7}, T0 + S)
    assert ok["accepted"] and ok["id"] == 7 and ok["state"]["state"] == "active_acked"


def test_restart_keeps_ack_and_clears_what_is_not_raised_again(tmp_path: Path) -> None:
    recorded: list[Transition] = []
    m = manager(tmp_path, recorded)
    m.on_events(
        [AlarmEvent(T0, "SLUGGING", "raise", 0.7), AlarmEvent(T0, "PUMP_SURGE", "raise", 0.2)],
        ["SLUGGING", "PUMP_SURGE"],
        T0,
    )
    m.command({"action": "ack", "alarm": "SLUGGING", "operator": "sato"}, T0 + S)
    m.command({"action": "ack", "alarm": "PUMP_SURGE", "operator": "sato"}, T0 + S)
    assert [e.cause for e in recorded] == ["raise", "raise", "ack", "ack"]

    # a new process: the processor starts clear, and re-raises only SLUGGING
    again = manager(tmp_path)
    assert again.book.get("SLUGGING").state == "active_acked"
    again.on_events([], [], T0 + 10 * S)  # the grace starts with the first block
    again.on_events([AlarmEvent(T0 + 20 * S, "SLUGGING", "raise", 0.7)], ["SLUGGING"], T0 + 20 * S)
    assert again.book.get("SLUGGING").state == "active_acked"  # raise again: ack kept
    late = T0 + 10 * S + again.grace_ns
    again.on_events([], ["SLUGGING"], late - 1)
    assert again.book.get("PUMP_SURGE").state == "active_acked"
    again.on_events([], ["SLUGGING"], late)
    assert again.book.get("PUMP_SURGE").state == "normal"
    assert again.book.get("SLUGGING").state == "active_acked"


def test_unreadable_state_file_is_kept_aside(tmp_path: Path) -> None:
    (tmp_path / "alarm_state.json").write_text("{torn")
    m = manager(tmp_path)
    assert (tmp_path / "alarm_state.json.bad").read_text() == "{torn"
    m.on_events([AlarmEvent(T0, "SLUGGING", "raise", 0.7)], ["SLUGGING"], T0)
    doc = json.loads((tmp_path / "alarm_state.json").read_text())
    assert doc["alarms"]["SLUGGING"]["state"] == "active_unacked"


def test_control_socket_round_trip_and_a_second_daemon(tmp_path: Path) -> None:
    m = manager(tmp_path)
    path = tmp_path / "control.sock"
    with pytest.raises(ControlError, match="no daemon"):
        request(path, {"action": "list"})

    async def main() -> None:
        first = ControlServer(path, lambda d: m.command(d, T0))
        await first.start()
        reply = await asyncio.to_thread(request, path, {"action": "list"})
        assert reply["accepted"] and "SLUGGING" in {a["name"] for a in reply["alarms"]}
        junk = await asyncio.to_thread(request, path, {"action": "ack"})
        assert junk["reason"] == "ack needs alarm"
        # a second daemon on the same data directory must not steal the live socket
        second = ControlServer(path, lambda d: {"accepted": False, "reason": "second"})
        await second.start()
        reply = await asyncio.to_thread(request, path, {"action": "list"})
        assert reply["accepted"], reply
        await second.aclose()
        await first.aclose()
        assert not path.exists()

    asyncio.run(main())


def test_suppression_follows_rules_and_a_reload_without_them(tmp_path: Path) -> None:
    m = AlarmManager(reference(), tmp_path, Sinks(), T0)  # reference: pumps stopped rule
    stopped = {"p101a.running": (0.0, 0), "p101b.running": (0.0, 0)}
    m.latest = lambda: stopped
    m.tick(T0 + S)
    assert m.book.get("PLUG_SUSPECTED").state == "suppressed"
    stopped["p101b.running"] = (1.0, 0)
    m.tick(T0 + 2 * S)
    assert m.book.get("PLUG_SUSPECTED").state == "normal"
    stopped["p101b.running"] = (0.0, 0)
    m.tick(T0 + 3 * S)
    # the rule is removed from the config and the daemon reloads: nothing stays suppressed
    again = AlarmManager(reference(alarm_management={}), tmp_path, Sinks(), T0 + 4 * S)
    assert again.book.get("PLUG_SUSPECTED").state == "suppressed"  # as saved
    again.tick(T0 + 5 * S)
    assert again.book.get("PLUG_SUSPECTED").state == "normal"
