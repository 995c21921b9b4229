"""The one-page report PNG of a run: what an engineer looks at first after a replay or demo."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

MAX_POINTS = 4000
COLUMNS = (
    "t_ns",
    "q_return_m3_h",
    "q_injection_m3_h",
    "rho_mix_kg_m3",
    "cv",
    "cv_section",
    "rey_kg_h",
    "u95_rey_kg_h",
    "cum_rey_kg",
    "u95_cum_rey_kg",
    "stability_index",
    "deposition_margin",
)


def _decimate(cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = len(cols["t_ns"])
    step = max(1, n // MAX_POINTS)
    return {k: np.asarray(v)[::step] for k, v in cols.items()}


def write_report(
    results: Path | Mapping[str, np.ndarray],
    events: Sequence[Mapping[str, Any]],
    out_png: Path,
    *,
    title: str,
    truth: Mapping[str, Any] | None = None,
    kpis: dict[str, Any] | None = None,
) -> Path:
    """Flow, density, Cv, REY rate, cumulative REY with its 95 % band, stability, alarms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(results, Path):
        table = pq.read_table(
            results, columns=[c for c in COLUMNS if c in pq.read_schema(results).names]
        )
        cols = {k: table[k].to_numpy() for k in table.column_names}
    else:
        cols = {k: np.asarray(v) for k, v in results.items() if k in COLUMNS}
    if len(cols.get("t_ns", [])) == 0:
        raise ValueError("no results to plot")
    d = _decimate(cols)
    t0 = int(d["t_ns"][0])
    hours = (d["t_ns"] - t0) / 3.6e12
    use_min = hours[-1] < 2.0
    x = hours * 60.0 if use_min else hours
    xlabel = "minutes since start" if use_min else "hours since start"

    fig, axes = plt.subplots(7, 1, figsize=(11, 15), sharex=True)
    fig.suptitle(title, fontsize=13)
    ax = axes[0]
    ax.plot(x, d["q_return_m3_h"], label="return (FT-201)", lw=0.8)
    ax.plot(x, d["q_injection_m3_h"], label="injection (FT-101)", lw=0.8)
    ax.set_ylabel("flow m³/h")
    ax.legend(loc="upper right", fontsize=8)
    axes[1].plot(x, d["rho_mix_kg_m3"], lw=0.8, color="tab:brown")
    axes[1].set_ylabel("density kg/m³")
    axes[2].plot(x, 100 * d["cv"], lw=0.8, label="E1 (density-flow)")
    if "cv_section" in d:
        axes[2].plot(x, 100 * d["cv_section"], lw=0.8, alpha=0.7, label="E3 (hydrostatic)")
    axes[2].set_ylabel("Cv %")
    axes[2].legend(loc="upper right", fontsize=8)
    rate, u_rate = d["rey_kg_h"], d["u95_rey_kg_h"]
    axes[3].plot(x, rate, lw=0.8, color="tab:green")
    axes[3].fill_between(x, rate - u_rate, rate + u_rate, color="tab:green", alpha=0.2, lw=0)
    axes[3].set_ylabel("REY kg/h")
    cum, u_cum = d["cum_rey_kg"], d["u95_cum_rey_kg"]
    axes[4].plot(x, cum, lw=1.0, color="tab:purple", label="cumulative REY")
    axes[4].fill_between(
        x, cum - u_cum, cum + u_cum, color="tab:purple", alpha=0.2, lw=0, label="95 % interval"
    )
    if truth and truth.get("delivered_rey_kg") is not None:
        axes[4].axhline(
            float(truth["delivered_rey_kg"]), color="k", ls="--", lw=0.8, label="plant truth (end)"
        )
    axes[4].set_ylabel("REY kg")
    axes[4].legend(loc="upper left", fontsize=8)
    axes[5].plot(x, d["stability_index"], lw=0.8, color="tab:orange")
    axes[5].set_ylim(-0.05, 1.05)
    axes[5].set_ylabel("stability")
    _alarm_panel(axes[6], events, t0, 60.0 if use_min else 1.0)
    if kpis is not None:
        from chikyu_daq.alarms.kpi import kpi_line

        axes[6].set_title(kpi_line(kpis), fontsize=8, loc="left")
    axes[6].set_xlabel(xlabel)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png


def _alarm_panel(ax: Any, events: Sequence[Mapping[str, Any]], t0: int, per_hour: float) -> None:
    names = sorted({str(e["alarm"]) for e in events})
    open_at: dict[str, float] = {}
    spans: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for e in sorted(events, key=lambda e: int(e["t_ns"])):
        t = (int(e["t_ns"]) - t0) / 3.6e12 * per_hour
        if e["kind"] == "raise":
            open_at[str(e["alarm"])] = t
        elif str(e["alarm"]) in open_at:
            spans[str(e["alarm"])].append((open_at.pop(str(e["alarm"])), t))
    end = ax.get_xlim()[1]
    for name, start in open_at.items():
        spans[name].append((start, end))
    for i, name in enumerate(names):
        for a, b in spans[name]:
            ax.broken_barh([(a, max(b - a, 1e-3))], (i - 0.4, 0.8), color="tab:red")
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_ylabel("alarms")
    if not names:
        ax.text(0.5, 0.5, "no alarms", transform=ax.transAxes, ha="center", va="center")
