"""Config → ChainParams: every result-relevant key reaches the kernels, and every kernel
parameter is set from config (a new dsp parameter must not silently run on its default)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from chikyu_daq.config import Config, load_config
from chikyu_daq.params import chain_params
from dsp.params import ChainParams

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("physics", "uncertainty", "stability")


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(REPO / "config" / "reference.toml")


def _keys(cfg: Config) -> list[tuple[str, str]]:
    return [(s, k) for s in SECTIONS for k in type(getattr(cfg, s)).model_fields]


@pytest.mark.parametrize("section_key", _keys(load_config(REPO / "config" / "reference.toml")))
def test_each_config_constant_changes_the_kernel_params(
    cfg: Config, section_key: tuple[str, str]
) -> None:
    section, key = section_key
    sec = getattr(cfg, section)
    old = getattr(sec, key)
    if isinstance(old, float):
        new = old * 1.01
    elif key == "seawater":
        new = "constant"
    elif key == "friction":
        new = "fixed"
    elif key == "temperature_profile":
        new = [(z, c + 1.0) for z, c in old]
    elif key == "osc_decim":
        new = 1 if old > 1 else 2  # halving keeps the band under the decimated Nyquist
    else:
        new = old * 2  # window lengths and FFT sizes (powers of two)
    changed = cfg.model_copy(update={section: sec.model_copy(update={key: new})})
    assert chain_params(changed) != chain_params(cfg), f"{section}.{key} does not reach ChainParams"


def test_every_chain_param_is_set_from_config(cfg: Config) -> None:
    defaults = ChainParams()
    # perturb every config number; no ChainParams field may be left at its default value
    # unless the reference config happens to equal it (then the perturbation must move it)
    base = chain_params(cfg)
    moved = set()
    for section, key in _keys(cfg):
        sec = getattr(cfg, section)
        old = getattr(sec, key)
        if not isinstance(old, float):
            continue
        p = chain_params(cfg.model_copy(update={section: sec.model_copy(update={key: old * 1.01})}))
        moved |= {
            f.name for f in dataclasses.fields(p) if getattr(p, f.name) != getattr(base, f.name)
        }
    set_elsewhere = {  # from [processing], [grade], [alarms] or derived
        "grid_step_s",
        "max_gap_s",
        "grade_default_ppm",
        "u_grade_default_ppm",
        "reo_factor",
        "grade_interpolate",
        "return_leg_volume_m3",
        "hampel_window",
        "osc_decim",
        "osc_n_fft",
        "deposition_risk",
        "slugging",
        "plug_suspected",
        "pump_surge",
        "flow_imbalance",
        "estimator_disagreement",
        "teos10",  # physics.seawater, a choice not a number (checked above)
        "colebrook",  # physics.friction
        "temp_profile",  # physics.temperature_profile
    }
    unmapped = {f.name for f in dataclasses.fields(defaults)} - moved - set_elsewhere
    assert unmapped == set()
