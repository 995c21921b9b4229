"""The processor: live-style increments equal one replay-style pass; faults become alarms."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import gsw
import numpy as np
import pytest

from chikyu_daq.config.model import Config, load_config
from chikyu_daq.live.processor import Processed, Processor, warm_up

REPO = Path(__file__).resolve().parents[3]
T0 = 1_780_000_000_000_000_000
RATES_HZ = {  # ICD reference rates of the role channels
    "ft201.volume_flow": 10.0,
    "ft101.volume_flow": 10.0,
    "dt201.density": 2.0,
    "pt301.pressure": 10.0,
    "pt302.pressure": 10.0,
    "pt303.pressure": 10.0,
    "ai20.pt101": 50.0,
    "ai20.pt201": 50.0,
    "ai20.tt201": 50.0,
    "p101a.torque": 5.0,
    "p101b.torque": 5.0,
}
NOMINAL = {
    "ft201.volume_flow": 330.0,
    "ft101.volume_flow": 300.0,
    "dt201.density": 1050.0,
    "pt301.pressure": 58_700.0,
    "pt302.pressure": 29_500.0,
    "pt303.pressure": 5_300.0,
    "ai20.pt101": 60.0,
    "ai20.pt201": 3.0,
    "ai20.tt201": 9.5,
    "p101a.torque": 70.0,
    "p101b.torque": 70.0,
}


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(REPO / "config" / "reference.toml")


Blocks = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def synth(seconds: float, seed: int = 1) -> Blocks:
    rng = np.random.default_rng(seed)
    out = {}
    for ch, hz in RATES_HZ.items():
        n = int(seconds * hz)
        t = T0 + (np.arange(n) * (1e9 / hz)).astype(np.int64) + rng.integers(0, 3_000_000, n)
        v = NOMINAL[ch] * (1 + 0.002 * rng.standard_normal(n))
        q = np.zeros(n, np.uint8)
        out[ch] = (np.sort(t), v, q)
    return out


def feed_in_ticks(
    p: Processor, data: Blocks, arrival: Blocks, tick_ns: int, span_ns: int
) -> list[Processed]:
    """Feed `data` in ticks of `tick_ns` by the `arrival` stamps (same shapes), advancing
    after each as the live pipeline does, then flush; the results of every call."""
    parts = []
    for lo, hi in itertools.pairwise(np.arange(T0, T0 + span_ns, tick_ns)):
        for ch, (t, v, q) in data.items():
            m = (arrival[ch][0] >= lo) & (arrival[ch][0] < hi)
            p.feed(ch, t[m], v[m], q[m])
        out = p.advance()
        if out is not None:
            parts.append(out)
    tail = p.flush()
    if tail is not None:
        parts.append(tail)
    return parts


def test_increments_equal_one_pass(cfg: Config) -> None:
    data = synth(300.0)
    whole = Processor(cfg)
    whole.feed_blocks(data)
    ref = whole.flush()
    assert ref is not None and len(ref) > 2900

    live = Processor(cfg)
    # ragged 137 ms deliveries, as the hub would hand them over
    parts = feed_in_ticks(live, data, data, 137_000_000, 301 * 10**9)
    t_live = np.concatenate([p.t_ns for p in parts])
    np.testing.assert_array_equal(t_live, ref.t_ns)
    for name, col in ref.columns.items():
        got = np.concatenate([p.columns[name] for p in parts])
        np.testing.assert_array_equal(got, col, err_msg=name)
    assert live.late_samples == 0


def test_yield_matches_hand_calculation(cfg: Config) -> None:
    p = Processor(cfg)
    p.feed_blocks(synth(120.0))
    r = p.flush()
    assert r is not None
    # seawater from TEOS-10 at TT-201's 9.5 degC and PT-201's 3 bar (gauge = 30 dbar)
    sa = cfg.physics.salinity_g_kg
    rho_w = float(gsw.rho(sa, gsw.CT_from_t(sa, 9.5, 30.0), 30.0))
    rho_s = 2500.0
    cv = (1050.0 - rho_w) / (rho_s - rho_w)
    vel = 330.0 / 3600.0 / (np.pi * 0.2**2 / 4)
    cv *= 1.0 - (1.0 - cv) * cfg.physics.slip_m_s / vel  # delivered, after slip
    ms = rho_s * cv * 330.0 / 3600.0
    # steady state, away from the start-up edge: mean within noise of the hand value
    assert np.nanmean(r.columns["ms_e1_kg_s"][-600:]) == pytest.approx(ms, rel=0.01)
    assert np.nanmean(r.columns["rey_kg_h"][-600:]) == pytest.approx(ms * 2000e-6 * 3600, rel=0.01)


def test_dead_channel_raises_sensor_fault_and_clock_keeps_moving(cfg: Config) -> None:
    data = synth(60.0)
    t, v, q = data["pt302.pressure"]
    dead = (t > T0 + 20 * 10**9) & (t < T0 + 40 * 10**9)
    v = np.where(dead, np.nan, v)
    q = np.where(dead, 2, q).astype(np.uint8)
    data["pt302.pressure"] = (t, v, q)
    p = Processor(cfg)
    p.feed_blocks(data)
    r = p.flush()
    assert r is not None
    ev = [(e.alarm, e.kind) for e in r.events if e.alarm.startswith("SENSOR_FAULT")]
    assert ev == [
        ("SENSOR_FAULT(pt302.pressure)", "raise"),
        ("SENSOR_FAULT(pt302.pressure)", "clear"),
    ]
    raised = next(e for e in r.events if e.kind == "raise")
    first_bad = int(t[dead][0])
    # raise_at = 2 s of continuous BAD on the grid (+ one grid step of alignment)
    assert 2.0 <= (raised.t_ns - first_bad) / 1e9 <= 2.2
    assert r.t_ns[-1] >= T0 + 59 * 10**9


def test_late_samples_are_counted_not_processed(cfg: Config) -> None:
    data = synth(30.0)
    t, v, q = data.pop("ft201.volume_flow")  # a slow channel: its first samples come last
    p = Processor(cfg)
    p.feed_blocks(data)
    assert p.flush() is not None
    p.feed("ft201.volume_flow", t[:5], v[:5], q[:5])
    assert p.late_samples == 5 and p.clock_rebases == 0


def test_warm_up_warns_nothing(cfg: Config, caplog: pytest.LogCaptureFixture) -> None:
    """The warm-up runs at every start: it must not put a "made BAD" warning in the log."""
    caplog.set_level(logging.WARNING)
    warm_up(cfg)
    assert [r.getMessage() for r in caplog.records] == []
