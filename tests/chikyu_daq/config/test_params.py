"""Config → kernel: every result-relevant config constant changes what the kernel COMPUTES.

A constant that reaches `ChainParams` but that the kernel never reads (once `injection_hd_m`)
must fail here, so each test runs the chain on a 20-minute input built to exercise every
mechanism (seawater phase for the reference, mud with slugs, a stop, a gap, a discharge rise,
assays) and compares its outputs (values, quality codes, alarm bits) with the unchanged run.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from chikyu_daq.config.model import Alarm, Config, parse_config
from chikyu_daq.config.params import chain_params, sensor_fault_spec
from chikyu_daq.rig.session import scenario_config
from dsp import seawater
from dsp.chain import ChainResult, init_state, process_block
from dsp.params import (
    ALARM_BY_NAME,
    ALARM_NAMES,
    ALARM_TABLE,
    SENSOR_FAULT,
    ChainParams,
    kernel_params,
    kernel_tables,
)
from hil.scenario import load_scenario
from tests.dsp.dsp_synth import make_block, pressures_kpa

REPO = Path(__file__).resolve().parents[3]
SECTIONS = ("processing", "physics", "uncertainty", "grade", "stability")
DURATION_S = 1200.0

#: Config keys that legitimately change nothing the kernel computes, and why.
NOT_KERNEL = {
    ("processing", "publish_hz"): "publishing rate of the sinks, not the kernel",
    ("processing", "align"): "the aligner's interpolation, before the kernel (test_dsp_align)",
    ("processing", "staleness_s"): "the aligner marks stale samples BAD, before the kernel",
    ("processing", "lateness_s"): "how long the processor waits for late samples",
    ("physics", "injection_hd_m"): "documented only: no estimator uses the injection line's "
    "diameter (E2 reads the injection flow itself)",
    ("grade", "replay_interpolate"): "applies to replays only (chain_params(replay=True))",
}
#: Keys whose x1.37 nudge cannot show in this input; the test uses these values instead.
NEW_VALUE: dict[tuple[str, str], Any] = {
    ("processing", "align"): "linear",
    ("physics", "rho_w_kg_m3"): 1030.0,  # x1.37 is above rho_b
    ("physics", "cv_max"): 0.005,  # the clamp only acts above the mud's Cv (0.017)
    ("physics", "g_m_s2"): 9.75,  # within the config's range
    ("physics", "seawater"): "constant",
    ("physics", "friction"): "fixed",
    ("physics", "deck_pressure_bar"): 30.0,  # used only while the line pressure is BAD
    ("physics", "deck_temperature_c"): 20.0,  # used only while the deck temperature is BAD
    ("stability", "injection_hold_m3_h_s"): 10.0,  # injection always "holds"
    ("stability", "hampel_floor_flow_m3_h"): 50.0,  # above the input's 20 m3/h spikes
    ("stability", "hampel_floor_rho_kg_m3"): 50.0,  # above its 30 kg/m3 spikes
    ("stability", "osc_f_lo_hz"): 0.05,  # above the 0.033 Hz slugs
    ("stability", "zero_max_kg_m3"): 0.1,  # below the 1 s means' noise: never referenced
    ("stability", "zero_steady_kg_m3"): 0.05,
    ("stability", "zero_stretch_max_s"): 60.0,  # one window: the 150 s stretch's last 60 s
    ("stability", "zero_min_flow_m3_h"): 400.0,  # above the injection flow
    ("stability", "stop_flow_m3_h"): 350.0,  # above the injection flow: always stopped
    ("stability", "osc_f_hi_hz"): 1.0,  # x1.37 is above the decimated Nyquist (2.5 Hz)
    ("stability", "osc_decim"): 1,
    ("stability", "hampel_window"): 61,
    ("stability", "osc_n_fft"): 1024,
    ("stability", "max_transit_s"): 60.0,  # shorter than the transit: the history gives out
    ("grade", "replay_interpolate"): True,
}


def _base() -> Config:
    """The reference config on the CI riser (the nominal scenario's), with windows that fit a
    20-minute input."""
    cfg = scenario_config(load_scenario("nominal"))
    ph = cfg.physics.model_copy(update={"temperature_profile": [(0.0, 9.5), (480.0, 8.0)]})
    st = cfg.stability.model_copy(
        update={"zero_window_s": 60.0, "compare_window_s": 120.0, "stop_holdoff_s": 30.0}
    )
    un = cfg.uncertainty.model_copy(update={"noise_batch_s": 30.0})
    return cfg.model_copy(update={"physics": ph, "stability": st, "uncertainty": un})


BASE = _base()


def _inputs(p: ChainParams) -> tuple[NDArray[np.int64], dict[str, Any], dict[str, Any], dict]:
    """Seawater for 150 s, then mud with 30 s slugs, a stop, a gap, a discharge rise."""
    n = round(DURATION_S / p.grid_step_s)
    s = np.arange(n) * p.grid_step_s
    t = 1_767_225_600_000_000_000 + np.round(s * 1e9).astype(np.int64)
    rng = np.random.default_rng(7)
    mud = s >= 150.0
    slug = np.where(s >= 400.0, 0.3 * np.sin(2 * np.pi * s / 30.0), 0.0)
    rho_w = float(seawater.deck_density(35.16, np.array([9.5]), np.array([3.0]), 9.5, 1.0)[0])
    cv = np.where(mud, 0.017 * (1 + slug), 0.0)
    rho_m = rho_w + cv * (2500.0 - rho_w) + 0.5 * rng.standard_normal(n)
    q_inj = 300.0 + 1.0 * rng.standard_normal(n)
    q_inj[(s >= 700.0) & (s < 740.0)] = 40.0  # a planned stop
    q_ret = np.where(mud, q_inj * 1.1, q_inj) * (1 + 0.05 * slug)
    q_ret = q_ret + 1.0 * rng.standard_normal(n)
    pc, pm, pu = pressures_kpa(p, rho_m, rho_m, q_ret)
    p_dis = 60.0 + 0.4 * slug + 0.02 * np.clip(s - 950.0, 0.0, 100.0)  # a plug, then held
    v = {
        "q_return_m3_h": q_ret,
        "q_injection_m3_h": q_inj,
        "rho_mix_kg_m3": rho_m,
        "p_collector_kpa": pc + 2.0 * rng.standard_normal(n),
        "p_mid_kpa": pm + 2.0 * rng.standard_normal(n),
        "p_upper_kpa": pu + 2.0 * rng.standard_normal(n),
        "p_discharge_bar": p_dis + 0.05 * rng.standard_normal(n),
        "p_return_deck_bar": 3.0 + 0.01 * rng.standard_normal(n),
        "torque_a_pct": 75.0 * (1 + 0.05 * slug) + rng.standard_normal(n),
        "torque_b_pct": 70.0 + rng.standard_normal(n),
    }
    spikes = rng.choice(n, 20, replace=False)
    v["q_return_m3_h"][spikes] += 20.0
    v["rho_mix_kg_m3"][spikes] += 30.0
    q = {k: np.zeros(n, np.uint8) for k in v}
    for k in q:
        q[k][(s >= 850.0) & (s < 856.0)] = 2  # a gap longer than max_gap_s
    q["p_return_deck_bar"][(s >= 300.0) & (s < 320.0)] = 2  # deck_pressure_bar stands in
    assays = {
        "assay_t_ns": t[[3000, 7000]],
        "assay_rey_ppm": np.array([2100.0, 1800.0]),
        "assay_u_rey_ppm": np.array([100.0, 120.0]),
    }
    return t, v, q, assays


def _run(cfg: Config, *, replay: bool = False) -> ChainResult:
    p = chain_params(cfg, replay=replay)
    t, v, q, assays = _inputs(p)
    return process_block(p, init_state(p), make_block(t, v, q, **assays))[0]


def _same(a: ChainResult, b: ChainResult) -> bool:
    return (
        a.t_ns.shape == b.t_ns.shape
        and np.array_equal(a.t_ns, b.t_ns)
        and np.array_equal(a.data, b.data, equal_nan=True)
        and np.array_equal(a.qual, b.qual)
        and np.array_equal(a.alarm_bits, b.alarm_bits)
    )


@pytest.fixture(scope="module")
def base() -> ChainResult:
    return _run(BASE)


def _keys() -> list[tuple[str, str]]:
    return [(s, k) for s in SECTIONS for k in type(getattr(BASE, s)).model_fields]


def _changed(section: str, key: str) -> Config:
    sec = getattr(BASE, section)
    old = getattr(sec, key)
    new = NEW_VALUE.get((section, key))
    if new is None:
        if key == "temperature_profile":
            new = [(z, c + 3.0) for z, c in old]
        elif isinstance(old, bool):
            new = not old
        elif isinstance(old, int):
            new = old * 2
        else:
            new = old * 1.37
    return BASE.model_copy(update={section: sec.model_copy(update={key: new})})


@pytest.mark.slow
@pytest.mark.parametrize("section_key", _keys(), ids="{0[0]}.{0[1]}".format)
def test_each_config_constant_changes_the_kernel_output(
    base: ChainResult, section_key: tuple[str, str]
) -> None:
    section, key = section_key
    changed = _changed(section, key)
    if section_key in NOT_KERNEL:
        assert _same(_run(changed), base), f"{section}.{key} is listed as not reaching the kernel"
        return
    if section_key == ("grade", "replay_interpolate"):
        assert not _same(_run(changed, replay=True), _run(BASE, replay=True))
        return
    assert not _same(_run(changed), base), f"{section}.{key} does not change the kernel output"


@pytest.mark.slow
@pytest.mark.parametrize("name", ALARM_NAMES)
def test_each_alarm_field_changes_the_alarm_bits(base: ChainResult, name: str) -> None:
    """raise_at, clear_at and min_duration_s each move the alarm (thresholds from the data)."""
    column = ALARM_BY_NAME[name].watches
    x = base[column]
    q25, q50, q75, q90 = np.nanquantile(x, [0.25, 0.5, 0.75, 0.9])
    assert q25 < q90, f"{column} does not move in the test input"
    bit = 1 << ALARM_NAMES.index(name)

    def bits(**spec: float) -> NDArray[np.uint8]:
        a = Alarm(**{"raise_at": q75, "clear_at": q50, "min_duration_s": 0.0, **spec})
        cfg = BASE.model_copy(update={"alarms": {**BASE.alarms, name: a}})
        return np.asarray(_run(cfg).alarm_bits & bit, np.uint8)

    ref = bits()
    assert ref.any(), f"{name} never raises between its quartiles"
    assert not np.array_equal(bits(raise_at=q90), ref), "raise_at"
    assert not np.array_equal(bits(clear_at=q25), ref), "clear_at"
    assert not np.array_equal(bits(min_duration_s=20.0), ref), "min_duration_s"


def test_every_chain_param_is_set_from_config() -> None:
    """No ChainParams field runs on a dsp-side value: each moves when its config key moves."""
    base = chain_params(BASE)
    moved: set[str] = set()
    for section, key in _keys():
        p = chain_params(_changed(section, key), replay=section == "grade")
        moved |= {
            f.name for f in dataclasses.fields(p) if getattr(p, f.name) != getattr(base, f.name)
        }
    for name in ALARM_NAMES:
        a = BASE.alarms[name]
        moved_a = a.model_copy(update={"raise_at": a.raise_at + 0.5 * (a.raise_at - a.clear_at)})
        p = chain_params(BASE.model_copy(update={"alarms": {**BASE.alarms, name: moved_a}}))
        moved |= {
            f.name for f in dataclasses.fields(p) if getattr(p, f.name) != getattr(base, f.name)
        }
    unmapped = {f.name for f in dataclasses.fields(base)} - moved
    assert unmapped == set()


def test_an_alarm_left_out_or_partly_set_keeps_its_one_default() -> None:
    """`[alarms.*]` may set any key of any alarm; every other key is the alarm's default (one
    table, dsp.params.ALARM_TABLE), and that is what the kernel's alarm table holds."""
    doc = tomllib.loads((REPO / "config" / "reference.toml").read_text())
    doc["alarms"] = {"SLUGGING": {"raise_at": 0.7}}
    cfg = parse_config(doc)
    table = kernel_tables(chain_params(cfg)).alarms
    for k, a in enumerate(ALARM_TABLE):
        d = a.default
        raise_at = 0.7 if a.name == "SLUGGING" else d.raise_
        assert table[k].tolist() == [raise_at, d.clear, round(d.min_duration_s * 1e9)], a.name
    assert sensor_fault_spec(cfg) == SENSOR_FAULT.default


def test_kernel_params_are_built_once_per_config() -> None:
    p = chain_params(BASE)
    assert kernel_params(p) is kernel_params(chain_params(BASE))


def test_config_roles_are_the_dsp_role_table() -> None:
    """Every `[roles]` key names a dsp role of ROLE_TABLE and every role has a key: one table."""
    from chikyu_daq.config.model import Roles
    from dsp.params import ROLE_BY_KEY

    assert set(Roles.model_fields) == set(ROLE_BY_KEY)
