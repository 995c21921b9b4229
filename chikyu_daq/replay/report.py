"""The one-page report PNG of a run: what an engineer looks at first after a replay or demo."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow.parquet as pq

from chikyu_daq.store.events import AlarmEdge
from dsp.fields import FIELD_BY_NAME

MAX_POINTS = 4000


class Trace(NamedTuple):
    """One line of a panel: an output field (a name of `dsp.fields`), optionally with its
    95 % half-width field drawn as a band."""

    field: str
    label: str | None = None
    color: str | None = None
    band: str | None = None
    scale: float = 1.0  # e.g. 100 for a ratio shown in %


class Panel(NamedTuple):
    title: str  # the y label before the unit
    traces: tuple[Trace, ...]
    unit: str | None = None  # None: the first trace's unit in the field table


#: The report's panels, top to bottom (the alarm panel follows). Each field is looked up in
#: the one output-field table, so a renamed or removed field fails at import, not in a plot.
PANELS = (
    Panel(
        "flow",
        (
            Trace("q_return_m3_h", "return (FT-201)"),
            Trace("q_injection_m3_h", "injection (FT-101)"),
        ),
    ),
    Panel("density", (Trace("rho_mix_kg_m3", color="tab:brown"),)),
    Panel(
        "Cv",
        (
            Trace("cv", "E1 (density-flow)", scale=100.0),
            Trace("cv_section", "E3 (hydrostatic)", scale=100.0),
        ),
        unit="%",
    ),
    Panel("REY", (Trace("rey_kg_h", color="tab:green", band="u95_rey_kg_h"),)),
    Panel("REY", (Trace("cum_rey_kg", "cumulative REY", "tab:purple", "u95_cum_rey_kg"),)),
    Panel("stability", (Trace("stability_index", color="tab:orange"),), unit=""),
)
COLUMNS = (
    "t_ns",
    *dict.fromkeys(
        FIELD_BY_NAME[name].name
        for panel in PANELS
        for tr in panel.traces
        for name in (tr.field, tr.band)
        if name is not None
    ),
)


def _decimate(cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    n = len(cols["t_ns"])
    step = max(1, n // MAX_POINTS)
    return {k: np.asarray(v)[::step] for k, v in cols.items()}


def _read_decimated(results: Path) -> dict[str, np.ndarray]:
    """The same points as `_decimate` of the whole file, read a row group at a time (memory
    independent of the run's length)."""
    f = pq.ParquetFile(results)
    names = [c for c in COLUMNS if c in f.schema_arrow.names]
    step = max(1, f.metadata.num_rows // MAX_POINTS)
    parts: dict[str, list[np.ndarray]] = {c: [] for c in names}
    offset = 0
    for batch in f.iter_batches(columns=names):
        idx = np.arange((-offset) % step, batch.num_rows, step)
        for c in names:
            parts[c].append(batch.column(c).to_numpy(zero_copy_only=False)[idx])
        offset += batch.num_rows
    return {c: np.concatenate(v) if v else np.zeros(0) for c, v in parts.items()}


def write_report(
    results: Path | Mapping[str, np.ndarray],
    events: Sequence[AlarmEdge],
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
        d = _read_decimated(results)
    else:
        d = _decimate({k: np.asarray(v) for k, v in results.items() if k in COLUMNS})
    if len(d.get("t_ns", [])) == 0:
        raise ValueError("no results to plot")
    t0 = int(d["t_ns"][0])
    hours = (d["t_ns"] - t0) / 3.6e12
    use_min = hours[-1] < 2.0
    x = hours * 60.0 if use_min else hours
    xlabel = "minutes since start" if use_min else "hours since start"

    fig, axes = plt.subplots(len(PANELS) + 1, 1, figsize=(11, 15), sharex=True)
    fig.suptitle(title, fontsize=13)
    for ax, panel in zip(axes, PANELS, strict=False):
        _plot_panel(ax, panel, x, d)
    rey_total = axes[[p.traces[0].field for p in PANELS].index("cum_rey_kg")]
    if truth and truth.get("delivered_rey_kg") is not None:
        rey_total.axhline(
            float(truth["delivered_rey_kg"]), color="k", ls="--", lw=0.8, label="plant truth (end)"
        )
        rey_total.legend(loc="upper left", fontsize=8)
    axes[-2].set_ylim(-0.05, 1.05)  # the stability index lies in [0, 1]
    _alarm_panel(axes[-1], events, t0, 60.0 if use_min else 1.0)
    if kpis is not None:
        from chikyu_daq.alarms.kpi import kpi_line

        axes[-1].set_title(kpi_line(kpis), fontsize=8, loc="left")
    axes[-1].set_xlabel(xlabel)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png


def _plot_panel(ax: Any, panel: Panel, x: np.ndarray, d: Mapping[str, np.ndarray]) -> None:
    """The panel's traces that the results hold, their bands, unit and legend."""
    labelled = False
    for tr in panel.traces:
        if tr.field not in d:
            continue
        y = tr.scale * d[tr.field]
        ax.plot(x, y, lw=0.8, color=tr.color, label=tr.label)
        if tr.band is not None and tr.band in d:
            u = tr.scale * d[tr.band]
            band = "95 % interval" if tr.label else None
            ax.fill_between(x, y - u, y + u, color=tr.color, alpha=0.2, lw=0, label=band)
        labelled |= tr.label is not None
    unit = FIELD_BY_NAME[panel.traces[0].field].unit if panel.unit is None else panel.unit
    ax.set_ylabel(f"{panel.title} {unit}".strip())
    if labelled:
        ax.legend(loc="upper left" if panel.traces[0].band else "upper right", fontsize=8)


def _alarm_panel(ax: Any, events: Sequence[AlarmEdge], t0: int, per_hour: float) -> None:
    names = sorted({e.alarm for e in events})
    open_at: dict[str, float] = {}
    spans: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for e in sorted(events, key=lambda e: e.t_ns):
        t = (e.t_ns - t0) / 3.6e12 * per_hour
        if e.kind == "raise":
            open_at[e.alarm] = t
        elif e.alarm in open_at:
            spans[e.alarm].append((open_at.pop(e.alarm), t))
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
