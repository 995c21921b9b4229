"""Plant physics against hand formulas and the exact truth balance."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hil.plant import Plant
from hil.scenario import Scenario, list_scenarios, load_scenario, parse_scenario

# reference physics, typed from docs/CONVENTIONS.md (not read from the code under test)
RHO_W, RHO_S, RHO_B, G, P_ATM = 1025.0, 2500.0, 1300.0, 9.80665, 101.325
D_RETURN, F_RETURN, D_INJ, F_INJ = 0.20, 0.015, 0.25, 0.015
A_RETURN = math.pi * D_RETURN**2 / 4
Q_INJ, Q_MUD = 300.0 / 3600, 30.0 / 3600
PHI_B = (RHO_B - RHO_W) / (RHO_S - RHO_W)
CV0 = PHI_B * Q_MUD / (Q_INJ + Q_MUD)
RHO_M = RHO_W + CV0 * (RHO_S - RHO_W)


def _with(name: str, **changes: object) -> Scenario:
    data = load_scenario(name).model_dump(mode="json")
    data.update(changes)
    return parse_scenario(data)


@pytest.mark.parametrize("name", list_scenarios())
def test_truth_balances_for_every_scenario(name: str) -> None:
    sc = load_scenario(name)
    plant = Plant(sc)
    for t in np.linspace(0.0, sc.ci_duration_s, 7)[1:]:
        plant.advance_to(float(t))
        tr = plant.truth()
        scale = max(tr.solids_in_kg + tr.solids_initial_kg, 1.0)
        assert abs(tr.solids_balance_error_kg) < 1e-11 * scale * 1e3
        assert abs(tr.rey_balance_error_kg) < 1e-11 * scale
        assert tr.solids_delivered_kg > 0.0


def test_reference_numbers_at_full_scale() -> None:
    plant = Plant(load_scenario("nominal").at_full_scale())
    plant.advance_to(30.0)
    st = plant.state()
    assert plant.hydraulics.return_volume_m3 == pytest.approx(179.0, abs=0.5)
    assert plant.hydraulics.return_volume_m3 / st["q_ret_m3_s"] / 60 == pytest.approx(32.5, abs=0.2)
    assert st["q_inj_m3_s"] * 3600 == pytest.approx(300.0, rel=1e-9)
    assert st["q_ret_m3_s"] * 3600 == pytest.approx(330.0, rel=1e-9)
    assert st["cv_deck"] == pytest.approx(CV0, rel=1e-9)
    assert st["rho_mean_kg_m3"] == pytest.approx(1050.0, abs=1.0)


def test_transmitter_pressures_of_a_uniform_column_match_the_hand_formula() -> None:
    sc = load_scenario("nominal").at_full_scale()
    plant = Plant(sc)
    plant.advance_to(10.0)
    st = plant.state()
    v = (Q_INJ + Q_MUD) / A_RETURN
    p_deck = st["p_deck_kpa_g"]
    for i, tag in enumerate(plant.hydraulics.depth_order):
        z = sc.plant.transmitter_depths_m[tag]
        hand = P_ATM + p_deck + (RHO_M * G * z + F_RETURN * z / D_RETURN * RHO_M * v**2 / 2) / 1000
        assert st[f"p_z{i}_kpa_abs"] == pytest.approx(hand, rel=1e-9), tag
    # pump discharge: collector head balance of the two legs
    length = sc.plant.riser_length_m
    v_inj = Q_INJ / sc.plant.injection_area_m2
    head = (
        p_deck
        + (
            F_INJ * length / D_INJ * RHO_W * v_inj**2 / 2
            + F_RETURN * length / D_RETURN * RHO_M * v**2 / 2
            + (RHO_M - RHO_W) * G * length
        )
        / 1000
    )
    assert st["p_pump_kpa_g"] == pytest.approx(head, rel=1e-6)


def _crossing_time(t: np.ndarray, y: np.ndarray, level: float) -> float:
    i = int(np.argmax(y >= level))
    assert i > 0, "never crossed"
    return float(np.interp(level, y[i - 1 : i + 1], t[i - 1 : i + 1]))


def _run(sc: Scenario, t_end: float) -> dict[str, np.ndarray]:
    plant = Plant(sc)
    rows = []
    while plant.t_s < t_end:
        plant.step(1)
        rows.append(plant.state())
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


def test_grade_step_arrives_one_transit_later_at_constant_flow() -> None:
    t0 = 20.0
    sc = _with("nominal", events=[{"kind": "grade", "at_s": t0, "grade_ppm": 5500.0}])
    vol = A_RETURN * sc.plant.riser_length_m
    transit = vol / (Q_INJ + Q_MUD)  # analytic, constant flow
    out = _run(sc, t0 + transit + 30.0)
    t_arr = _crossing_time(out["t_s"], out["grade_deck_ppm"], 3750.0)
    cell_s = vol / sc.plant.cells / (Q_INJ + Q_MUD)
    assert abs(t_arr - (t0 + transit)) <= cell_s + sc.plant.dt_s
    early = out["grade_deck_ppm"][out["t_s"] < t0 + transit - cell_s - 1]
    assert early.max() == pytest.approx(2000.0, rel=1e-12)


def test_concentration_step_arrives_after_the_integrated_transit_with_varying_flow() -> None:
    t0 = 20.0
    events = [
        {"kind": "intake", "at_s": t0, "mud_m3_h": 15.0},
        {"kind": "pump_speed", "at_s": t0, "pump": "p101a", "speed_rpm": 1200.0},
        {"kind": "pump_speed", "at_s": t0, "pump": "p101b", "speed_rpm": 1300.0},
    ]
    sc = _with("nominal", events=events)
    out = _run(sc, t0 + 400.0)
    vol = A_RETURN * sc.plant.riser_length_m
    # volume passed since t0, integrated independently of the cell model
    t, q = out["t_s"], out["q_ret_m3_s"]
    passed = np.concatenate([[0.0], np.cumsum(np.diff(t) * 0.5 * (q[1:] + q[:-1]))])
    passed -= np.interp(t0, t, passed)
    t_expected = float(np.interp(vol, passed, t))
    assert t_expected - t0 > vol / (Q_INJ + Q_MUD) * 1.05  # the flow really slowed down
    cv_hi, cv_lo = CV0, out["cv_in"][-1]
    t_arr = _crossing_time(out["t_s"], -out["cv_deck"], -0.5 * (cv_hi + cv_lo))
    cell_s = vol / sc.plant.cells / q.min()
    assert abs(t_arr - t_expected) <= cell_s + sc.plant.dt_s


def test_plugging_raises_pressure_and_lowers_flow() -> None:
    sc = load_scenario("plugging")
    plant = Plant(sc)
    plant.advance_to(25.0)
    before = plant.state()
    plant.advance_to(200.0)
    after = plant.state()
    assert after["q_inj_m3_s"] < 0.8 * before["q_inj_m3_s"]
    assert after["p_pump_kpa_g"] > before["p_pump_kpa_g"] + 50.0
    assert after["p_z2_kpa_abs"] > before["p_z2_kpa_abs"]


def test_pump_trip_and_restart() -> None:
    plant = Plant(load_scenario("pump_trip"))
    plant.advance_to(55.0)
    r = plant.readings(["p101a"])
    assert int(r["p101a.status_word"]) & 0b10011 == 0b10011  # ready, running, at_speed
    plant.advance_to(100.0)
    r = plant.readings(["p101a", "ft101"])
    st = plant.state()
    assert int(r["p101a.status_word"]) & 0b111 == 0b100  # fault, not ready, not running
    assert r["p101a.fault_code"] == 7.0
    assert st["n_a_rpm"] < 50.0 and st["q_a_m3_s"] == 0.0
    assert 150.0 < r["ft101.volume_flow"] < 260.0  # one pump rides out on its curve
    plant.advance_to(299.0)
    assert plant.state()["n_a_rpm"] == pytest.approx(1480.0)
    assert int(plant.readings(["p101a"])["p101a.status_word"]) & 0b111 == 0b011


def test_drive_power_is_consistent_with_head_and_flow() -> None:
    plant = Plant(load_scenario("nominal").at_full_scale())
    plant.advance_to(20.0)
    r = plant.readings()
    q_pump = r["ft101.volume_flow"] / 3600 / 2
    hydraulic_kw = r["ai20.pt101"] * 100.0 * q_pump
    efficiency = hydraulic_kw / r["p101a.shaft_power"]
    assert 0.6 < efficiency < 0.8
    omega = 2 * math.pi * r["p101a.speed"] / 60
    torque_nm = r["p101a.shaft_power"] * 1000 / omega
    rated_nm = 315e3 / (2 * math.pi * 1490 / 60)
    assert r["p101a.torque"] == pytest.approx(100 * torque_nm / rated_nm, abs=1.5)
