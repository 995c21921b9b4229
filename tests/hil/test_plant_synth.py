"""The synth fast path: rates, timestamps, qualities a correct driver assigns, truth."""

from __future__ import annotations

import time

import gsw
import numpy as np
import pytest

from hil.plant import CHANNELS, TRUTH_SERIES, synth_blocks
from hil.scenario import load_scenario

START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
RATES_HZ = {"p101a": 5, "p101b": 5, "ft101": 10, "ft201": 10, "ai20": 50,
            "pt301": 10, "pt302": 10, "pt303": 10, "dt201": 2}  # fmt: skip
GOOD, UNCERTAIN, BAD = 0, 1, 2


def _collect(name: str, hours: float, block_s: float = 60.0) -> tuple[dict, list]:
    blocks = list(synth_blocks(load_scenario(name), hours, START_NS, block_s))
    chans = {
        k: tuple(np.concatenate([b.channels[k][i] for b in blocks]) for i in range(3))
        for k in blocks[0].channels
    }
    return chans, blocks


def test_block_layout_rates_and_timestamps() -> None:
    chans, blocks = _collect("nominal", 0.05)
    assert set(chans) == set(CHANNELS)
    for cid, (t, v, q) in chans.items():
        assert t.dtype == np.int64 and v.dtype == np.float64 and q.dtype == np.uint8, cid
        rate = RATES_HZ[cid.split(".")[0]]
        dt_s = np.diff(t) / 1e9
        assert np.all(dt_s > 0), cid
        assert np.median(dt_s) == pytest.approx(1.0 / rate, rel=0.02), cid
        assert t[0] >= START_NS and t[-1] < START_NS + 180e9 + 0.2e9, cid
        assert v.shape[0] == pytest.approx(180 * rate, abs=1), cid
        assert np.all(q == GOOD) and np.all(np.isfinite(v)), cid
    # Modbus samples carry jitter; the subsea bus serialises its three units
    jitter = (chans["ft201.volume_flow"][0] - START_NS) % 100_000_000
    assert jitter.std() > 0.0 and jitter.max() < 25_000_000
    offsets = [np.median((chans[f"{u}.pressure"][0] - START_NS) % 100_000_000) / 1e6
               for u in ("pt301", "pt302", "pt303")]  # fmt: skip
    assert offsets[0] < offsets[1] < offsets[2]
    assert [b.start_s for b in blocks] == [0.0, 60.0, 120.0]


def test_truth_series_balances_and_matches_the_rate() -> None:
    sc = load_scenario("nominal")
    _chans, blocks = _collect("nominal", 0.05)
    truth = {k: np.concatenate([b.truth[k] for b in blocks]) for k in blocks[0].truth}
    assert set(truth) == {"t_ns", *TRUTH_SERIES}
    assert np.array_equal(np.diff(truth["t_ns"]), np.full(179, 1_000_000_000))
    tot = blocks[-1].totals
    assert abs(tot.solids_balance_error_kg) < 1e-9
    # steady nominal: what is delivered is what enters, rho_s phi_b Q_mud grade, with the
    # mud's pore water in situ at the riser's foot (TEOS-10, 480 m, ~5.5 degC)
    z = np.arange(0.0, sc.plant.riser_length_m + 0.5, 0.5)
    temp = np.interp(z, [0.0, z[-1]], [sc.plant.deck_return_temp_c, sc.plant.seabed_temp_c + 3])
    pres = np.zeros_like(z)
    for _ in range(3):
        rho = gsw.rho(35.16, gsw.CT_from_t(35.16, temp, pres), pres)
        pres = np.concatenate(([0.0], np.cumsum(0.5 * (rho[1:] + rho[:-1]) * 0.5))) * 9.80665e-4
    rho_w = float(gsw.rho(35.16, gsw.CT_from_t(35.16, temp[-1], pres[-1]), pres[-1]))
    phi_b = (1300 - rho_w) / (2500 - rho_w)
    rate_kg_s = 2500 * phi_b * 30 / 3600 * 2000e-6
    assert tot.rey_delivered_kg == pytest.approx(rate_kg_s * 180.0, rel=1e-4)
    assert truth["rey_delivered_kg"][-1] == pytest.approx(rate_kg_s * 179.0, rel=1e-4)
    assert tot.t_s == pytest.approx(sc.ci_duration_s - 60.0)


@pytest.mark.parametrize("name", ["sensor_faults", "comms_outage"])
def test_fault_qualities_are_what_a_correct_driver_assigns(name: str) -> None:
    chans, _ = _collect(name, 240 / 3600)

    def in_window(cid: str, a: float, b: float) -> tuple[np.ndarray, ...]:
        t, v, q = chans[cid]
        s = (t - START_NS) / 1e9
        return (s >= a) & (s < b), v, q

    if name == "sensor_faults":
        bad_windows = {"pt302.pressure": (40, 100), "ai20.pt201": (90, 150),
                       "ft201.volume_flow": (120, 160)}  # fmt: skip
        for cid, (a, b) in bad_windows.items():
            w, v, q = in_window(cid, a + 0.2, b - 0.2)
            assert np.all(q[w] == BAD), cid
            outside, _, _ = in_window(cid, 0, a - 0.5)
            assert np.all(q[outside] == GOOD), cid
        w, v, _ = in_window("pt302.temperature", 41, 99)
        assert np.all(np.isnan(v[w]))
        assert np.all(
            np.isnan(in_window("ai20.pt201", 91, 149)[1][in_window("ai20.pt201", 91, 149)[0]])
        )
        assert np.all(
            chans["ft201.diagnostics"][1][in_window("ft201.diagnostics", 121, 159)[0]] == 1
        )
        assert np.all(chans["ft101.volume_flow"][2] == GOOD)
        # 30 % of densitometer sentences garbled and dropped between 60 and 200 s
        t = (chans["dt201.density"][0] - START_NS) / 1e9
        kept = np.sum((t >= 60) & (t < 200))
        assert 0.55 * 280 < kept < 0.85 * 280
        assert np.sum(t < 60) == 120
    else:
        for cid in ("p101a.speed", "ft201.volume_flow", "ai20.pt101"):
            w, v, q = in_window(cid, 90, 120)
            assert np.all(q[w] == BAD) and np.all(np.isnan(v[w])), cid
            assert np.all(q[~w] == GOOD), cid
        assert np.all(chans["pt301.pressure"][2] == GOOD)
        assert np.all(chans["dt201.density"][2] == GOOD)


def test_stuck_transmitter_is_bad_by_frozen_counter() -> None:
    from hil.scenario import parse_scenario

    data = load_scenario("nominal").model_dump(mode="json")
    data["events"] = [{"kind": "fault", "at_s": 30.0, "duration_s": 20.0, "target": "pt303",
                       "fault": "stuck"}]  # fmt: skip
    blocks = list(synth_blocks(parse_scenario(data), 60 / 3600, START_NS, 60.0))
    t, v, q = blocks[0].channels["pt303.pressure"]
    s = (t - START_NS) / 1e9
    frozen = (s > 30.2) & (s < 50)
    assert np.all(q[frozen] == BAD) and np.all(q[s < 30] == GOOD) and np.all(q[s > 50.2] == GOOD)
    assert len(np.unique(v[frozen])) == 1


@pytest.mark.slow
def test_measure_synth_24h_nominal_full_scale() -> None:
    """Prints the time for 24 h of nominal at reference rates (not asserted)."""
    sc = load_scenario("nominal").at_full_scale()
    list(synth_blocks(sc, 0.01, START_NS, 36.0))  # compile / load the kernels
    t0 = time.perf_counter()
    n = 0
    for b in synth_blocks(sc, 24.0, START_NS, 3600.0):
        n += sum(c[0].shape[0] for c in b.channels.values())
        last = b
    elapsed = time.perf_counter() - t0
    print(f"\nsynth 24 h nominal: {n} samples in {elapsed:.1f} s")
    assert 38e6 < n < 41e6
    # 307 t summed over 864,000 steps: float64 rounding, relative
    assert abs(last.totals.solids_balance_error_kg) < 1e-10 * last.totals.solids_delivered_kg


def test_synth_writes_lab_assays_with_real_error() -> None:
    """grade_change replayed without assays was -56 %: synth now samples the deck hourly."""
    base = load_scenario("grade_change")
    plant = base.plant.model_copy(update={"lab_interval_s": 60.0})
    sc = base.model_copy(update={"plant": plant})
    blocks = list(synth_blocks(sc, 0.25, START_NS, 300.0))
    assays = [a for b in blocks for a in b.assays]
    assert len(assays) == 14  # every minute from 60 s to 840 s
    truth = {k: np.concatenate([b.truth[k] for b in blocks]) for k in ("t_ns", "grade_deck_ppm")}
    rel = []
    for t_ns, rey, u, _ in assays:
        true = np.interp(t_ns, truth["t_ns"], truth["grade_deck_ppm"])
        rel.append(rey / true - 1.0)
        assert u == pytest.approx(0.03 * rey)
    rel_a = np.array(rel)
    assert 0.005 < rel_a.std() < 0.06  # a real lab's error, not the exact grade
    assert max(a[1] for a in assays) > 4000  # the new layer reached the deck and the lab


def test_plant_v2_seawater_and_draws() -> None:
    """The densitometer's truth is TEOS-10 at the deck's temperature, not 1025; with draws the
    constants and calibration errors differ per run and stay within spec."""
    from hil.plant.physics import CALIBRATION_SPEC, TRUTH_SPREAD, draw

    blocks = list(synth_blocks(load_scenario("nominal"), 0.02, START_NS, 60.0))
    rho = blocks[0].truth["density_deck_kg_m3"]
    cv = blocks[0].truth["cv_deck"]
    rho_w = rho - cv * (2500.0 - rho) / (1 - cv)  # solve rho = rho_w (1 - c) + rho_s c
    assert np.all(np.abs(rho_w - 1027.2) < 0.3)  # TEOS-10, 35.16 g/kg, ~9.5 degC, ~1.5 bar
    p = load_scenario("nominal").plant.model_copy(update={"draws": True})
    a, b = draw(p, 1), draw(p, 2)
    assert a.params.rho_s_kg_m3 != b.params.rho_s_kg_m3
    for d in (a, b):
        for name, half in TRUTH_SPREAD.items():
            assert abs(getattr(d.params, name) - getattr(p, name)) <= half
        for ch, (g, o) in CALIBRATION_SPEC.items():
            gain, off = d.calibration.errors[ch]
            assert abs(gain) <= g and abs(off) <= o


def test_bit_channels_are_those_the_reference_maps_name() -> None:
    """The catalogue's status bits are the config's: a driver derives the same channels."""
    from chikyu_daq.config.checks import channel_ids
    from chikyu_daq.config.model import load_config

    reference = set(channel_ids(load_config("config/reference.toml")))
    block = next(synth_blocks(load_scenario("nominal"), 0.01, START_NS, 36.0, bit_channels=True))
    # the densitometer's sentence counter is framing, not a reading the synth writes
    assert set(block.channels) == reference - {"dt201.seq"}
    t, v, _q = block.channels["p101a.running"]
    assert np.array_equal(t, block.channels["p101a.status_word"][0]) and set(v) == {1.0}
