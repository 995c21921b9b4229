"""DSP chain benchmark: numba chain vs an idiomatic pandas/NumPy chain on a 24 h recording.

Run: ``.venv/bin/python benchmarks/bench_dsp.py [--hours 24] [--out benchmarks/out/bench_dsp.json]``.
Everything runs on one core (thread pools pinned to 1 before numpy loads). Reports the
alignment of 10 raw channels onto the 10 Hz grid, the chain, the pandas version of the same
chain (rolling median Hampel, rolling windows, numpy FFT spectrum), and cold / cached compile
time of ``dsp.warmup()`` measured in fresh interpreters with an empty / filled numba cache.
"""

from __future__ import annotations

import os

for _v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from numpy.typing import NDArray  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dsp  # noqa: E402
from dsp.chain import ROLES, Block, init_state, process_block  # noqa: E402
from dsp.params import ChainParams  # noqa: E402

STEP_NS = 100_000_000
RATES_HZ = {  # native sample rates of the reference installation (approximate)
    "q_return_m3_h": 5.0,
    "q_injection_m3_h": 5.0,
    "rho_mix_kg_m3": 1.0,
    "p_collector_kpa": 2.0,
    "p_mid_kpa": 2.0,
    "p_upper_kpa": 2.0,
    "p_discharge_bar": 10.0,
    "p_return_deck_bar": 10.0,
    "torque_a_pct": 5.0,
    "torque_b_pct": 5.0,
}


def raw_recording(hours: float, seed: int = 0) -> dict[str, tuple[NDArray, NDArray, NDArray]]:
    """Irregular samples per role with noise, spikes, dropouts and a 0.1 Hz heave component."""
    rng = np.random.default_rng(seed)
    dur_s = hours * 3600
    out = {}
    g = 9.80665
    for role, hz in RATES_HZ.items():
        n = int(dur_s * hz)
        t = np.cumsum(rng.normal(1e9 / hz, 0.05e9 / hz, n)).astype(np.int64)
        ts = t / 1e9
        if role == "q_return_m3_h":
            v = 330 + 5 * np.sin(2 * np.pi * ts / 900) + rng.normal(0, 1.0, n)
        elif role == "q_injection_m3_h":
            v = 300 + rng.normal(0, 1.0, n)
        elif role == "rho_mix_kg_m3":
            v = 1050 + 10 * np.sin(2 * np.pi * ts / 3000) + rng.normal(0, 0.9, n)
            v[rng.random(n) < 0.002] = 1600.0
        elif role.startswith("p_") and role.endswith("kpa"):
            depth = {"p_collector_kpa": 5690, "p_mid_kpa": 2850, "p_upper_kpa": 500}[role]
            v = 101.3 + 1017 * g * depth / 1000 + rng.normal(0, 2.0, n)
        elif role == "p_discharge_bar":
            v = 60 + 0.4 * np.sin(2 * np.pi * 0.1 * ts) + rng.normal(0, 0.05, n)
        elif role == "p_return_deck_bar":
            v = 3 + rng.normal(0, 0.05, n)
        elif role == "torque_a_pct":
            v = 78 + rng.normal(0, 1.0, n)
        else:
            v = np.zeros(n)
        q = np.zeros(n, np.uint8)
        drop = rng.random(n) < 0.001
        q[drop] = 2
        v[drop] = np.nan
        out[role] = (t, v, q)
    return out


def dsp_align(raw: dict, grid: NDArray[np.int64]) -> tuple[dict, dict]:
    vals, quals = {}, {}
    for role, (t, v, q) in raw.items():
        vals[role], quals[role], _ = dsp.align(
            dsp.align_init(), t, v, q, grid, method="hold", stale_ns=3_000_000_000
        )
    return vals, quals


def dsp_chain(p: ChainParams, grid: NDArray[np.int64], vals: dict, quals: dict) -> dict:
    r, _ = process_block(p, init_state(p), Block(grid, vals, quals))
    return {
        "cum_rey_kg": float(r["cum_rey_kg"][-1]),
        "osc_freq_hz": float(r["osc_freq_hz"][-1]),
        "events": len(r.events),
    }


def pandas_chain(p: ChainParams, grid: NDArray[np.int64], raw: dict) -> dict:
    """The same chain written the idiomatic pandas/NumPy way (vectorised, no numba)."""
    idx = pd.to_datetime(grid)
    df = pd.DataFrame(index=idx)
    for role, (t, v, q) in raw.items():
        s = pd.Series(np.where(q < 2, v, np.nan), index=pd.to_datetime(t))
        df[role] = s.reindex(idx, method="ffill", tolerance=pd.Timedelta(seconds=3))
    w = p.hampel_window
    for col, floor in (
        ("q_return_m3_h", p.hampel_floor_flow_m3_h),
        ("q_injection_m3_h", p.hampel_floor_flow_m3_h),
        ("rho_mix_kg_m3", p.hampel_floor_rho_kg_m3),
    ):
        s = df[col]
        med = s.rolling(w, min_periods=w // 2 + 1).median()
        mad = (s - med).abs().rolling(w, min_periods=w // 2 + 1).median()
        thr = p.hampel_n_sigma * np.maximum(1.4826 * mad, floor)
        df[col] = s.where(~((s - med).abs() > thr), med)
    q_ret, q_inj, rho = df["q_return_m3_h"], df["q_injection_m3_h"], df["rho_mix_kg_m3"]
    dsw = p.rho_s - p.rho_w
    cv = ((rho - p.rho_w) / dsw).clip(0, p.cv_max)
    ms1 = p.rho_s * cv * q_ret / 3600
    # E2: cumulative volume, interpolate the intake one leg volume back
    vol = (q_ret.ffill().fillna(0).clip(lower=0) * p.grid_step_s / 3600).cumsum().to_numpy()
    src = (p.rho_s * (p.rho_b - p.rho_w) / dsw * (q_ret - q_inj) / 3600).to_numpy()
    tgt = vol - p.return_leg_volume_m3
    ms2 = np.where(tgt >= vol[0], np.interp(tgt, vol, src), np.nan)
    area = np.pi * p.return_id_m**2 / 4
    vel = q_ret / 3600 / area
    fr = p.darcy_f / p.return_id_m / 2 * vel**2
    dz = p.depth_collector_m - p.depth_upper_m
    rho3 = (df["p_collector_kpa"] - df["p_upper_kpa"]) * 1000 / ((p.g + fr) * dz)
    ms3 = p.rho_s * (rho3 - p.rho_w) / dsw * q_ret / 3600
    wc = p.points(p.cv_window_s)
    wb = p.points(p.compare_window_s)
    m1 = ms1.rolling(wb, min_periods=wb // 2).mean()
    m2 = pd.Series(ms2, index=idx).rolling(wb, min_periods=wb // 2).mean()
    m3 = ms3.rolling(wb, min_periods=wb // 2).mean()
    z = np.maximum((m3 - m1).abs() / 0.05, (m2 - m1).abs() / 0.1)
    # yield, trapezoid with the max-gap rule, uncertainty accumulators
    rate = (ms1 * p.grade_default_ppm * 1e-6).to_numpy()
    ok = np.flatnonzero(np.isfinite(rate))
    dt = np.diff(grid[ok]) / 1e9
    seg = 0.5 * (rate[ok][1:] + rate[ok][:-1]) * dt
    seg[dt > p.max_gap_s] = 0.0
    cum = np.cumsum(seg)
    sens = rate[ok] * p.u_flow_rel_sys
    acc = np.cumsum(0.5 * (sens[1:] + sens[:-1]) * dt)
    u95 = 2 * np.abs(acc)
    # stability: rolling CVs, 1 Hz slope, spectrum, ratio
    torque = df[["torque_a_pct", "torque_b_pct"]].sum(axis=1, min_count=1)
    cvs = {}
    for name, s in (("flow", q_ret), ("density", rho), ("torque", torque)):
        r = s.rolling(wc, min_periods=wc // 2)
        cvs[name] = r.std() / r.mean().abs()
    ratio = (
        q_ret.rolling(wc, min_periods=wc // 2).mean()
        / q_inj.rolling(wc, min_periods=wc // 2).mean()
    )
    sec = df["p_discharge_bar"].resample("1s").mean()
    ws = round(p.slope_window_s)
    x = pd.Series(np.arange(len(sec), dtype=float), index=sec.index)
    slope = sec.rolling(ws).cov(x) / x.rolling(ws).var()
    dec = df["p_discharge_bar"].ffill().to_numpy()
    dec = dec[: dec.size // p.osc_decim * p.osc_decim].reshape(-1, p.osc_decim).mean(axis=1)
    nfft = p.osc_n_fft
    hop = max(1, round(p.osc_update_s / (p.grid_step_s * p.osc_decim)))
    win = np.lib.stride_tricks.sliding_window_view(dec, nfft)[::hop]
    i = np.arange(nfft)
    coef = np.polynomial.polynomial.polyfit(i, win.T, 1)
    det = win - (coef[0][:, None] + coef[1][:, None] * i)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * i / nfft)
    pw = np.abs(np.fft.rfft(det * hann, axis=1)) ** 2
    f = np.fft.rfftfreq(nfft, p.grid_step_s * p.osc_decim)
    band = (f >= p.osc_f_lo_hz) & (f <= p.osc_f_hi_hz)
    kb = np.argmax(np.where(band, pw, -1), axis=1)
    share = pw[np.arange(len(kb)), kb] / pw[:, band].sum(axis=1)
    margin = vel / (p.durand_fl * np.sqrt(2 * p.g * p.return_id_m * (p.rho_s / p.rho_w - 1)))
    stab = pd.concat(
        [
            ((margin - 1) / (p.margin_ok - 1)).clip(0, 1),
            1 - (cvs["flow"] / p.cv_flow_bad).clip(0, 1),
            1 - (cvs["density"] / p.cv_density_bad).clip(0, 1),
            1 - (cvs["torque"] / p.cv_torque_bad).clip(0, 1),
        ],
        axis=1,
    ).min(axis=1)
    # alarms: hysteresis over run boundaries only (sequential by nature)
    events = 0
    for values, spec in (
        (margin.to_numpy(), p.deposition_risk),
        (z.to_numpy(), p.estimator_disagreement),
        (ratio.to_numpy(), p.flow_imbalance),
    ):
        high = spec.raise_ > spec.clear
        cond_r = values >= spec.raise_ if high else values <= spec.raise_
        starts = np.flatnonzero(np.diff(cond_r.astype(np.int8)) == 1)
        events += int(starts.size)
    return {
        "cum_rey_kg": float(cum[-1]),
        "u95": float(u95[-1]),
        "osc_freq_hz": float(f[kb[-1]]),
        "share": float(share[-1]),
        "slope": float(slope.iloc[-1]),
        "stab": float(stab.iloc[-1]),
        "events": events,
    }


def compile_times() -> dict[str, float]:
    code = (
        "import time; t0 = time.perf_counter(); import dsp; t1 = time.perf_counter(); "
        "dsp.warmup(); t2 = time.perf_counter(); print(t1 - t0, t2 - t1)"
    )
    res = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        root = str(Path(__file__).resolve().parent.parent)
        for label in ("cold", "cached"):
            out = subprocess.run(
                [sys.executable, "-c", code],
                env=env,
                cwd=root,
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            res[f"import_s_{label}"] = float(out[0])
            res[f"warmup_s_{label}"] = float(out[1])
    return res


def best_of(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best = np.inf
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/out/bench_dsp.json")
    args = ap.parse_args()
    comp = compile_times()
    dsp.warmup()
    p = ChainParams()
    raw = raw_recording(args.hours)
    n = int(args.hours * 3600 * 10)
    grid = raw["p_discharge_bar"][0][0] + 5_000_000_000 + np.arange(n, dtype=np.int64) * STEP_NS
    grid = grid[grid <= min(t[-1] for t, _, _ in raw.values())]
    t_align, (vals, quals) = best_of(lambda: dsp_align(raw, grid), args.repeat)
    t_chain, chain_out = best_of(lambda: dsp_chain(p, grid, vals, quals), args.repeat)
    t_pandas, pandas_out = best_of(lambda: pandas_chain(p, grid, raw), max(1, args.repeat - 2))
    rec = {
        "grid_points": int(grid.size),
        "hours": args.hours,
        "dsp_align_s": t_align,
        "dsp_chain_s": t_chain,
        "dsp_total_s": t_align + t_chain,
        "pandas_total_s": t_pandas,
        "speedup_vs_pandas": t_pandas / (t_align + t_chain),
        "chain_points_per_s": grid.size / t_chain,
        **comp,
        "dsp_result": chain_out,
        "pandas_result": pandas_out,
        "python": platform.python_version(),
        "machine": platform.processor() or platform.machine(),
        "roles": list(ROLES),
    }
    out = Path(args.out)
    out = out if out.suffix == ".json" else out / "dsp.json"  # a directory: `make bench`
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rec, indent=2))
    print(json.dumps(rec, indent=2))


if __name__ == "__main__":
    main()
