"""Instrument models, faults as the emulators see them, and the shared clock."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hil.plant import Plant, RealClock, SimClock, synth_blocks
from hil.scenario import load_scenario, parse_scenario

AI_SPAN_COUNTS = 27648


def _channels(name: str, hours: float, **kw: object) -> dict[str, tuple[np.ndarray, ...]]:
    blocks = list(synth_blocks(load_scenario(name), hours, 0, 60.0, **kw))  # type: ignore[arg-type]
    keys = blocks[0].channels
    return {
        k: tuple(np.concatenate([b.channels[k][i] for b in blocks]) for i in range(3)) for k in keys
    }


def test_noise_statistics_match_the_instrument_spec() -> None:
    ch = _channels("nominal", 0.05)  # 180 s of steady plant
    _t, v, q = ch["ft201.volume_flow"]
    assert np.all(q == 0)
    n = v.shape[0]
    assert abs(v.mean() - 330.0) < 4 * 0.6 / np.sqrt(n)
    assert v.std() == pytest.approx(0.6, rel=0.15)
    _, dens, _ = ch["dt201.density"]
    assert dens.std() == pytest.approx(0.7, rel=0.25)


def test_readings_are_quantised_at_register_resolution() -> None:
    ch = _channels("nominal", 0.02)
    for cid, quantum in [
        ("p101a.speed", 1.0),
        ("p101a.motor_current", 0.1),
        ("p101a.torque", 0.1),
        ("p101a.dc_bus_voltage", 1.0),
        ("pt301.temperature", 0.01),
        ("dt201.density", 0.01),
        ("dt201.temperature", 0.1),
        ("ft201.conductivity", 10.0),
    ]:
        v = ch[cid][1] / quantum
        assert np.allclose(v, np.round(v), atol=1e-6), cid
    for cid, hi in [("ai20.pt101", 250.0), ("ai20.pt201", 25.0), ("ai20.tt201", 50.0)]:
        counts = ch[cid][1] / hi * AI_SPAN_COUNTS
        assert np.allclose(counts, np.round(counts), atol=1e-6), cid
        assert len(np.unique(ch[cid][1])) > 3, cid
    for cid in ("ft201.volume_flow", "pt301.pressure", "p101a.shaft_power"):
        v = ch[cid][1]
        assert np.array_equal(v, v.astype(np.float32).astype(np.float64)), cid


def test_same_seed_same_recording_other_seed_differs_block_size_irrelevant() -> None:
    a = _channels("nominal", 0.02)
    b = _channels("nominal", 0.02)
    c = _channels("nominal", 0.02, seed=99)
    whole = next(iter(synth_blocks(load_scenario("nominal"), 0.02, 0, 72.0)))
    for k in a:
        for i in range(3):
            assert np.array_equal(a[k][i], b[k][i], equal_nan=True), k
            assert np.array_equal(a[k][i], whole.channels[k][i], equal_nan=True), k
    assert not np.array_equal(a["ft201.volume_flow"][1], c["ft201.volume_flow"][1])


def test_live_readings_reflect_faults_and_status_bits() -> None:
    plant = Plant(load_scenario("sensor_faults"))
    plant.advance_to(30.0)
    assert plant.fault_flags() == {}
    r = plant.readings()
    assert all(np.isfinite(v) for v in r.values())
    assert r["ft201.diagnostics"] == 0 and r["dt201.status"] == 0
    plant.advance_to(50.0)
    assert plant.fault_flags() == {"pt302": {"dropout"}}
    plant.advance_to(130.0)
    flags = plant.fault_flags()
    assert flags == {"dt201": {"garbled"}, "ai20.pt201": {"namur_fail"}, "ft201": {"empty_pipe"}}
    r = plant.readings()
    assert int(r["ft201.diagnostics"]) & 1 == 1
    assert r["ft201.volume_flow"] == 0.0
    # 3.5 mA on a 0-25 bar loop: (3.5 - 4) / 16 * 25 bar, exactly on the count grid
    assert r["ai20.pt201"] == pytest.approx((3.5 - 4.0) / 16.0 * 25.0, abs=25.0 / AI_SPAN_COUNTS)
    plant.advance_to(170.0)
    assert plant.fault_flags() == {"dt201": {"garbled"}}
    assert plant.readings(["ft201"])["ft201.diagnostics"] == 0


def test_stuck_transmitter_freezes_value_and_counter() -> None:
    data = load_scenario("nominal").model_dump(mode="json")
    data["events"] = [{"kind": "fault", "at_s": 20.0, "target": "pt301", "fault": "stuck"}]
    data["events"].append(
        {
            "kind": "fault",
            "at_s": 20.0,
            "target": "dt201",
            "fault": "status_bits",
            "params": {"mask": 16},
        }
    )
    plant = Plant(parse_scenario(data))
    plant.advance_to(25.0)
    a = plant.readings(["pt301", "dt201"])
    plant.advance_to(40.0)
    b = plant.readings(["pt301", "dt201"])
    assert a["pt301.pressure"] == b["pt301.pressure"]
    assert a["pt301.sample_counter"] == b["pt301.sample_counter"]
    assert int(b["dt201.status"]) & 16 == 16


def test_density_drift_reaches_its_total() -> None:
    blocks = list(synth_blocks(load_scenario("density_drift"), 0.5, 0, 600.0))
    t, v, _ = blocks[-1].channels["dt201.density"]
    truth = blocks[-1].truth
    late = t > t[-1] - 120e9
    true_rho = np.interp(t[late], truth["t_ns"], truth["density_deck_kg_m3"])
    expected = 8.0 * (t[late].mean() / 1e9) / 3600.0
    assert np.mean(v[late] - true_rho) == pytest.approx(expected, abs=0.25)


def test_sim_clock_runs_forward_only() -> None:
    clock = SimClock(start_ns=1_000_000_000)
    assert clock.now_s() == 0.0
    clock.advance(1.5)
    assert clock.now_ns() == 2_500_000_000
    with pytest.raises(ValueError):
        clock.advance(-0.1)
    with pytest.raises(ValueError):
        clock.set(1.0)
    plant = Plant(load_scenario("nominal"), clock)
    clock.set(12.34)
    plant.sync()
    assert plant.t_s == pytest.approx(12.3)


def test_real_clock_is_monotonic() -> None:
    clock = RealClock()
    samples = [clock.now_s() for _ in range(100)]
    assert all(b >= a for a, b in itertools.pairwise(samples))
    assert abs(clock.now_ns() - clock.start_ns) < 60e9
