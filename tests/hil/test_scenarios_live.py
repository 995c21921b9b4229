"""Every scenario through `chikyu-daq hil run` (emulators + plant + the real pipeline), scored
against plant truth. All scenarios run at once, each in its own process, so CI waits for the
longest one only; each then passes or fails on its own bounds (JUnit per scenario)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.scenario import list_scenarios, load_scenario

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = list_scenarios()


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, tuple[int, str, Path]]]:
    tmp = tmp_path_factory.mktemp("hil")
    procs: dict[str, tuple[subprocess.Popen[str], Path]] = {}
    for name in SCENARIOS:
        out = tmp / name
        out.mkdir()
        procs[name] = (
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "chikyu_daq",
                    "hil",
                    "run",
                    "--scenario",
                    name,
                    "--data-dir",
                    str(out / "data"),
                    "--junit",
                    str(out / "junit.xml"),
                    "--json",
                    str(out / "score.json"),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=REPO,
            ),
            out,
        )
    longest = max(load_scenario(n).ci_duration_s for n in SCENARIOS)
    deadline = time.monotonic() + longest + 180
    results: dict[str, tuple[int, str, Path]] = {}
    try:
        for name, (proc, out) in procs.items():
            text, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results[name] = (proc.returncode, text, out)
        yield results
    finally:
        for proc, _ in procs.values():
            if proc.poll() is None:
                proc.kill()


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
def test_scenario_passes_its_bounds(name: str, outcomes: dict[str, tuple[int, str, Path]]) -> None:
    rc, text, out = outcomes[name]
    assert rc == 0, text[-4000:]
    suite = ET.parse(out / "junit.xml").getroot()
    assert suite.get("failures") == "0"
    score = json.loads((out / "score.json").read_text())
    assert score["passed"] and score["checks"]["no Modbus writes"]["ok"]


def test_nominal_accuracy(outcomes: dict[str, tuple[int, str, Path]]) -> None:
    """DESIGN quality bar: cumulative REY within 1 % of truth, truth inside the 95 % interval,
    no alarm at all."""
    score = json.loads((outcomes["nominal"][2] / "score.json").read_text())
    assert abs(score["rey_error_pct"]) <= 1.0
    assert score["truth_in_interval"]
    assert score["unexpected_alarms"] == []
