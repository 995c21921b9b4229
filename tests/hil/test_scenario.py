"""Scenario files: every bundled one loads with the reference physics; bad ones are named."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hil.scenario import ScenarioError, list_scenarios, load_scenario, parse_scenario

NINE = {"nominal", "grade_change", "slugging", "plugging", "pump_trip", "density_drift",
        "sensor_faults", "heave", "comms_outage"}  # fmt: skip


def test_the_nine_scenarios_are_bundled_with_reference_physics() -> None:
    assert set(list_scenarios()) == NINE
    for name in NINE:
        sc = load_scenario(name)
        p = sc.plant
        assert (p.rho_w_kg_m3, p.rho_s_kg_m3, p.rho_b_kg_m3, p.g_m_s2) == (
            1025,
            2500,
            1300,
            9.80665,
        )
        assert (p.return_id_m, p.injection_dh_m, p.friction_return) == (0.20, 0.25, 0.015)
        assert sc.ci_duration_s <= 300.0
        transit_s = math.pi / 4 * p.return_id_m**2 * p.riser_length_m / (330 / 3600)
        assert transit_s < sc.ci_duration_s, name
        full = sc.at_full_scale().plant
        assert full.riser_length_m == 5700.0
        assert full.transmitter_depths_m == {"pt301": 5690.0, "pt302": 2850.0, "pt303": 500.0}


def test_nominal_stays_clear_of_deposition_and_expects_no_alarm() -> None:
    sc = load_scenario("nominal")
    v = (300 + 30) / 3600 / (math.pi / 4 * 0.2**2)
    vc = 0.8 * math.sqrt(2 * 9.80665 * 0.2 * (2500 / 1025 - 1))
    assert v / vc > 1.4
    assert sc.events == () and sc.expect.alarms == () and not sc.expect.allow_other_alarms
    assert sc.expect.accuracy.rey_error_pct_max == 2.0 and sc.expect.accuracy.truth_in_interval


def _base() -> dict[str, object]:
    return {"name": "x", "description": "d", "duration_s": 100.0, "ci_duration_s": 50.0}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"colour": "red"}, "colour: unknown key"),
        ({"plant": {"riser_lenght_m": 400.0}}, "plant.riser_lenght_m: unknown key"),
        ({"plant": {"riser_length_m": -1.0}}, "plant.riser_length_m"),
        ({"plant": {"riser_length_m": 400.0}}, "transmitter_depths_m.pt301"),
        ({"ci_duration_s": 500.0}, "ci_duration_s must not exceed"),
        ({"events": [{"kind": "grade", "at_s": 1.0, "grade_ppm": 1.0, "rmp_s": 2}]},
         "events.0.grade.rmp_s: unknown key"),
        ({"events": [{"kind": "explode", "at_s": 1.0}]}, "events.0"),
        ({"events": [{"kind": "fault", "at_s": 1, "target": "pt999", "fault": "stuck"}]},
         "unknown fault target 'pt999'"),
        ({"events": [{"kind": "fault", "at_s": 1, "target": "ft201", "fault": "namur_fail"}]},
         "namur_fail needs an AI-20 channel"),
        ({"events": [{"kind": "fault", "at_s": 1, "target": "pt301", "fault": "melt"}]},
         "events.0.fault.fault"),
        ({"expect": {"alarms": [{"name": "FIRE", "latest_raise_s": 3}]}}, "unknown alarm 'FIRE'"),
    ],
)  # fmt: skip
def test_invalid_scenarios_name_the_key(change: dict[str, object], needle: str) -> None:
    data = _base() | change
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, "bad.toml")
    assert "bad.toml" in str(err.value)
    assert needle in str(err.value)


def test_load_by_path_and_unknown_name(tmp_path: Path) -> None:
    f = tmp_path / "mine.toml"
    f.write_text('name = "mine"\ndescription = "d"\nduration_s = 10.0\nci_duration_s = 5.0\n')
    assert load_scenario(f).name == "mine"
    f.write_text("name = \n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(f)
    with pytest.raises(ScenarioError, match="no scenario named 'nope'"):
        load_scenario("nope")
