"""The alarm lifecycle state machine and the EEMUA 191 KPIs, pure (no I/O, no clock)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from chikyu_daq.alarms.kpi import AlarmKpis, kpi_line, kpis_from_events
from chikyu_daq.alarms.policy import alarm_names, new_book, replay_kpis, suppressions
from chikyu_daq.alarms.states import (
    ACKED,
    NORMAL,
    OUT_OF_SERVICE,
    RTNUN,
    SHELVED,
    SUPPRESSED,
    UNACK,
    AlarmBook,
    Rejected,
)
from chikyu_daq.config.model import AlarmManagement
from chikyu_daq.store.events import AlarmEdge, decode, encode
from tests.iface_servers import reference

S = 1_000_000_000
T0 = 1_800_000_000 * S  # a whole 10-minute period boundary


def book() -> AlarmBook:
    return AlarmBook(lambda n: "high", max_shelve_s=3600.0)


def test_ack_paths_normal_unack_acked_rtnun() -> None:
    b = book()
    (tr,) = b.raise_("SLUGGING", T0, 0.7)
    assert (tr.from_state, tr.to_state, tr.cause) == (NORMAL, UNACK, "raise")
    assert b.raise_("SLUGGING", T0 + S) == []  # a repeated raise changes nothing
    (tr,) = b.ack("SLUGGING", T0 + 2 * S, "sato", "seen")
    assert (tr.to_state, tr.operator, tr.reason) == (ACKED, "sato", "seen")
    with pytest.raises(Rejected, match="already acknowledged"):
        b.ack("SLUGGING", T0 + 3 * S, "sato", "again")
    assert b.clear("SLUGGING", T0 + 4 * S)[0].to_state == NORMAL
    # returned before anyone acknowledged it: cleared unacknowledged until acknowledged
    b.raise_("SLUGGING", T0 + 5 * S)
    assert b.clear("SLUGGING", T0 + 6 * S)[0].to_state == RTNUN
    assert b.ack("SLUGGING", T0 + 7 * S, "sato")[0].to_state == NORMAL
    with pytest.raises(Rejected, match="unknown alarm"):
        b.ack("NO_SUCH", T0, "sato")


def test_timed_shelve_expires_and_reannunciates() -> None:
    b = book()
    b.raise_("PUMP_SURGE", T0)
    with pytest.raises(Rejected, match="max shelve time"):
        b.shelve("PUMP_SURGE", T0, "ito", "maintenance", duration_s=3601)
    (tr,) = b.shelve("PUMP_SURGE", T0, "ito", "maintenance", duration_s=600)
    assert tr.to_state == SHELVED and tr.shelved_until_ns == T0 + 600 * S
    with pytest.raises(Rejected, match="already shelved by ito"):
        b.shelve("PUMP_SURGE", T0, "sato", "x", duration_s=10)
    with pytest.raises(Rejected, match="nothing to acknowledge"):
        b.ack("PUMP_SURGE", T0 + S, "sato")
    # raised and cleared while shelved: recorded, never annunciated
    assert b.clear("PUMP_SURGE", T0 + 10 * S)[0].to_state == SHELVED
    assert b.raise_("PUMP_SURGE", T0 + 20 * S)[0].to_state == SHELVED
    assert b.expire(T0 + 599 * S) == []
    (tr,) = b.expire(T0 + 600 * S)
    # still active when the shelve ran out: back to the operator, unacknowledged
    assert (tr.cause, tr.from_state, tr.to_state) == ("shelve_expired", SHELVED, UNACK)


def test_one_shot_shelve_ends_when_alarm_clears() -> None:
    b = book()
    b.get("PLUG_SUSPECTED")
    with pytest.raises(Rejected, match="not active"):
        b.shelve("PLUG_SUSPECTED", T0, "ito", "x", one_shot=True)
    b.raise_("PLUG_SUSPECTED", T0)
    b.shelve("PLUG_SUSPECTED", T0 + S, "ito", "flushing line", one_shot=True)
    trs = b.clear("PLUG_SUSPECTED", T0 + 5 * S)
    assert [(t.cause, t.to_state) for t in trs] == [("clear", SHELVED), ("unshelve", NORMAL)]
    with pytest.raises(Rejected, match="not shelved"):
        b.unshelve("PLUG_SUSPECTED", T0 + 6 * S, "ito", "done")


def test_suppression_by_design_and_out_of_service() -> None:
    cfg = reference(
        alarm_management={
            "out_of_service": ["SENSOR_FAULT(pt30*)"],
            "suppress": [
                {
                    "alarms": ["PLUG_SUSPECTED"],
                    "reason": "pumps commanded down",
                    "when": [
                        {"channel": "p101a.speed", "below": 50.0},
                        {"channel": "p101b.speed", "below": 50.0},
                    ],
                }
            ],
            "maintenance": [
                {
                    "device": "ft101",
                    "start": datetime.fromtimestamp(T0 / S, UTC).isoformat(),
                    "end": datetime.fromtimestamp(T0 / S + 3600, UTC).isoformat(),
                }
            ],
        }
    )
    am = cfg.alarm_management
    names = alarm_names(cfg)
    b, first = new_book(cfg, T0)
    assert {t.name for t in first} == {n for n in names if n.startswith("SENSOR_FAULT(pt30")}
    assert b.get("SENSOR_FAULT(pt301.pressure)").state == OUT_OF_SERVICE
    down = {"p101a.speed": (0.0, 0), "p101b.speed": (10.0, 0)}
    sup = suppressions(am, names, down, T0 + S)
    assert sup["PLUG_SUSPECTED"] == "pumps commanded down"
    assert sup["SENSOR_FAULT(ft101.volume_flow)"] == "maintenance (ft101)"
    assert sup["SENSOR_FAULT(ft201.volume_flow)"] is None
    # one pump running, or a BAD reading: not suppressed (unknown data never hides an alarm)
    assert (
        suppressions(am, names, {**down, "p101b.speed": (900.0, 0)}, T0)["PLUG_SUSPECTED"] is None
    )
    assert suppressions(am, names, {**down, "p101b.speed": (0.0, 2)}, T0)["PLUG_SUSPECTED"] is None
    assert suppressions(am, names, down, T0 + 3601 * S)["SENSOR_FAULT(ft101.volume_flow)"] is None
    b.raise_("PLUG_SUSPECTED", T0)
    (tr,) = b.set_suppressed("PLUG_SUSPECTED", "pumps commanded down", T0 + S)
    assert (tr.from_state, tr.to_state) == (UNACK, SUPPRESSED)
    # suppression lifted while still active: annunciated again
    assert b.set_suppressed("PLUG_SUSPECTED", None, T0 + 2 * S)[0].to_state == UNACK
    # out of service: its own causes, and setting the same reason again is no transition
    (oos,) = b.set_out_of_service("SLUGGING", "densitometer swap", T0 + 3 * S)
    assert (oos.cause, oos.to_state, oos.reason) == (
        "out_of_service",
        OUT_OF_SERVICE,
        "densitometer swap",
    )
    assert b.set_out_of_service("SLUGGING", "densitometer swap", T0 + 4 * S) == []
    (back,) = b.set_out_of_service("SLUGGING", None, T0 + 5 * S)
    assert (back.cause, back.from_state) == ("in_service", OUT_OF_SERVICE)


def test_priorities_from_config() -> None:
    am = AlarmManagement(priorities={"SENSOR_FAULT": "low", "SLUGGING": "critical"})
    cfg = reference(alarm_management=am.model_dump(mode="json"))
    b, _ = new_book(cfg, T0)
    assert b.get("SLUGGING").priority == "critical"
    assert b.get("SENSOR_FAULT(dt201.density)").priority == "low"
    assert b.get("PUMP_SURGE").priority == "medium"


def test_state_round_trips_through_json() -> None:
    b = book()
    b.raise_("SLUGGING", T0)
    b.shelve("SLUGGING", T0, "ito", "x", duration_s=60)
    again = AlarmBook(lambda n: "low", 3600.0)
    again.load_json(b.to_json())
    st = again.get("SLUGGING")
    assert st.state == SHELVED and st.active and st.shelve is not None
    assert st.shelve.operator == "ito" and st.priority == "low"


def test_kpis_on_flood_scenario_match_hand_count() -> None:
    """Period 0: PUMP_SURGE raised 12 times, 20 s apart (a flood and chattering); period 1:
    SLUGGING twice, 5 min apart, the second while shelved; DEPOSITION_RISK raised once at the
    start and never cleared (stale after 24 h)."""
    ev = [AlarmEdge(T0, "DEPOSITION_RISK", "raise", 1.0)]
    for i in range(12):
        t = T0 + (10 + 20 * i) * S
        ev.append(AlarmEdge(t, "PUMP_SURGE", "raise", 0.2))
        ev.append(AlarmEdge(t + 5 * S, "PUMP_SURGE", "clear", 0.0))
    ev.append(AlarmEdge(T0 + 700 * S, "SLUGGING", "raise", 0.6))
    ev.append(AlarmEdge(T0 + 750 * S, "SLUGGING", "clear", 0.1))
    ev.append(AlarmEdge(T0 + 1000 * S, "SLUGGING", "raise", 0.6))
    cfg = reference()
    now = T0 + 25 * 3600 * S
    k = replay_kpis(cfg, ev, T0, now)
    assert k["annunciated"] == 1 + 12 + 2
    assert k["periods"] == 25 * 6 + 1
    assert k["alarms_per_10min"] == pytest.approx(15 / 151)
    assert k["peak_per_10min"] == 13  # DEPOSITION_RISK + 12 PUMP_SURGE in period 0
    assert k["flood_periods"] == 1
    assert k["chattering"] == ["PUMP_SURGE"]
    assert k["stale"] == ["DEPOSITION_RISK", "SLUGGING"]
    assert k["top10"] == [["PUMP_SURGE", 12], ["SLUGGING", 2], ["DEPOSITION_RISK", 1]]
    assert k["shelved_s"] == {}
    assert kpi_line(k) == (
        "EEMUA 191: 0.10 alarms/10 min (peak 13), floods 1, chattering 1, stale 2; "
        "most frequent: PUMP_SURGE 12, SLUGGING 2, DEPOSITION_RISK 1"
    )

    # the same stream through a book with an operator shelving SLUGGING for 200 s
    b, _ = new_book(cfg, T0)
    kpi = AlarmKpis(T0)
    recorded = []
    for e in ev:
        if e.t_ns == T0 + 1000 * S:
            recorded += b.shelve("SLUGGING", T0 + 800 * S, "ito", "tuning", duration_s=200)
            recorded += b.expire(T0 + 1000 * S)
            recorded += b.shelve("SLUGGING", T0 + 1000 * S, "ito", "tuning", duration_s=300)
        step = b.raise_ if e.kind == "raise" else b.clear
        recorded += step(e.alarm, e.t_ns, e.value)
    for tr in recorded:
        kpi.add(tr)
    k2 = kpi.snapshot(T0 + 1200 * S)
    assert k2["annunciated"] == 1 + 12 + 1  # the raise while shelved was not annunciated
    assert k2["shelved_s"] == {"SLUGGING": 200.0 + 200.0}  # one closed, one still open
    # and the recorded events give the same numbers (live == replay == report), read back
    # from their events.jsonl lines
    lines = [json.dumps(encode(t)) for t in recorded]
    assert kpis_from_events([decode(json.loads(x)) for x in lines], T0, T0 + 1200 * S) == k2


def test_alarm_management_keys_that_name_nothing_are_config_errors() -> None:
    import tomllib

    from chikyu_daq.config.model import ConfigError, parse_config
    from tests.iface_servers import REFERENCE

    data = tomllib.loads(REFERENCE.read_text())
    data["alarm_management"] = {
        "priorities": {"SLUGGING": "high", "SLUGGIN": "low"},
        "out_of_service": ["SENSOR_FAULT(pt3*)", "NOPE*"],
        "suppress": [
            {
                "alarms": ["PLUG_SUSPECTED", "PLUG"],
                "reason": "pumps down",
                "when": [
                    {"channel": "p101a.running", "equals": 0},
                    {"channel": "p9.x", "below": 1},
                ],
            }
        ],
        "maintenance": [
            {"device": "pt99", "start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}
        ],
    }
    with pytest.raises(ConfigError) as err:
        parse_config(data, "daq.toml")
    assert sorted(i.path for i in err.value.issues) == [
        "alarm_management.maintenance[0].device",
        "alarm_management.out_of_service[1]",
        "alarm_management.priorities.SLUGGIN",
        "alarm_management.suppress[0].alarms[1]",
        "alarm_management.suppress[0].when[1].channel",
    ]
    data["alarm_management"]["maintenance"][0]["end"] = "2026-01-01T00:00:00"
    with pytest.raises(ConfigError) as err:
        parse_config(data, "daq.toml")
    assert any("UTC offset" in i.message for i in err.value.issues)
