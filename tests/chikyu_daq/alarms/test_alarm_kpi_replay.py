"""EEMUA 191 KPIs of a replayed alarm flood against a hand count.

`hil synth` writes 15 min of the `alarm_flood` scenario (a chattering transmitter, then one
device after another failing), `replay` processes it; the summary's `alarm_kpis` must equal
what simple loops count from the replay's own raise/clear events (events.jsonl)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
SCENARIO = REPO / "hil" / "scenarios" / "alarms" / "alarm_flood.toml"
CLI = [sys.executable, "-m", "chikyu_daq"]
TEN_MIN_NS = 600 * 10**9
MINUTE_NS = 60 * 10**9


def run(*args: str) -> str:
    p = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert p.returncode == 0, p.stderr
    return p.stdout


def hand_count(events: list[dict[str, Any]], from_ns: int, to_ns: int) -> dict[str, Any]:
    """The KPIs by their textbook definitions, written without the daemon's code."""
    raises = [e for e in events if e.get("type") == "alarm" and e["kind"] == "raise"]
    per_period: dict[int, int] = defaultdict(int)
    per_alarm: dict[str, int] = defaultdict(int)
    times: dict[str, list[int]] = defaultdict(list)
    for e in raises:
        per_period[e["t_ns"] // TEN_MIN_NS] += 1
        per_alarm[e["alarm"]] += 1
        times[e["alarm"]].append(e["t_ns"])
    periods = to_ns // TEN_MIN_NS - from_ns // TEN_MIN_NS + 1
    chattering = []
    for name, ts in times.items():
        for t in ts:  # three raises within any minute
            if sum(1 for u in ts if t <= u < t + MINUTE_NS) >= 3:
                chattering.append(name)
                break
    ranked = sorted(per_alarm.items(), key=lambda kv: (-kv[1], kv[0]))
    return {
        "annunciated": len(raises),
        "periods": periods,
        "alarms_per_10min": len(raises) / periods,
        "peak_per_10min": max(per_period.values()),
        "flood_periods": sum(1 for n in per_period.values() if n >= 10),
        "chattering": sorted(chattering),
        "top10": [[n, c] for n, c in ranked[:10]],
    }


def test_replayed_flood_kpis_match_a_hand_count(tmp_path: Path) -> None:
    synth = json.loads(
        run(
            "hil", "synth", "--scenario", str(SCENARIO), "--hours", "0.25", "--ci-riser",
            "--out", str(tmp_path / "data"),
        )
    )  # fmt: skip
    run("replay", synth["run"], "--out", str(tmp_path / "replay"), "--no-report")
    summary = json.loads((tmp_path / "replay" / "summary.json").read_text())
    lines = (tmp_path / "replay" / "events.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    want = hand_count(events, summary["from_ns"], summary["to_ns"])
    # the scenario does what it says: a flood and a chattering transmitter
    assert want["flood_periods"] >= 1 and want["peak_per_10min"] >= 10
    assert want["chattering"] == ["SENSOR_FAULT(pt303.pressure)"]
    got = summary["alarm_kpis"]
    assert {k: got[k] for k in want} == want
    assert got["n_chattering"] == len(want["chattering"]) and got["stale"] == []
