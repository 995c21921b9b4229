"""Replay a recorded run through the same processor (and optionally sinks), clocked by the data.

The recording is read in chunks of recording time, only the channels the estimators use, and
fed to a `Processor` exactly as the live daemon would have; the kernels are chunk-invariant, so
a replay with the run's own config reproduces the live results on the same grid. Another config
(`-c`) changes physics or thresholds; the summary names every constant that differs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from chikyu_daq.alarms.kpi import kpis_from_events
from chikyu_daq.alarms.policy import replay_kpis
from chikyu_daq.config import Config, ConfigError, parse_config
from chikyu_daq.outputs import Outputs, alarm_event_dict
from chikyu_daq.processor import Processed, Processor
from chikyu_daq.recording import RAW_SCHEMA, Run, open_run, segment_files

log = logging.getLogger(__name__)

CHUNK_S = 3600.0
#: Config sections whose differences change results (named in the summary).
RESULT_SECTIONS = ("processing", "roles", "physics", "uncertainty", "grade", "stability", "alarms")

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass
class ReplayOptions:
    out_dir: Path
    t_from_ns: int | None = None
    t_to_ns: int | None = None
    speed: float | None = None  # None: as fast as possible; N: N x real time
    influx: bool = False
    mqtt: bool = False
    report: bool = True


def recorded_config(run: Run) -> Config:
    """The config the run was recorded with (manifest snapshot)."""
    snap = run.manifest.get("config")
    if not snap:
        raise ConfigError(str(run.path / "manifest.json"), [])
    return parse_config(snap, str(run.path / "manifest.json"))


def config_differences(a: Config, b: Config) -> dict[str, tuple[Any, Any]]:
    """Dotted keys of result-relevant constants that differ: {key: (recorded, replay)}."""
    out: dict[str, tuple[Any, Any]] = {}

    def walk(prefix: str, x: Any, y: Any) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(f"{prefix}.{k}", x.get(k), y.get(k))
        elif x != y:
            out[prefix] = (x, y)

    da, db = a.model_dump(mode="json"), b.model_dump(mode="json")
    for section in RESULT_SECTIONS:
        walk(section, da.get(section), db.get(section))
    return out


def split_channels(table: pa.Table) -> dict[str, Arrays]:
    """Long (channel, t_ns, value, quality) → per channel arrays, time order kept."""
    if table.num_rows == 0:
        return {}
    chan = table["channel"].combine_chunks()
    if not pa.types.is_dictionary(chan.type):
        chan = pc.dictionary_encode(chan)
    names = chan.dictionary.to_pylist()
    codes = chan.indices.to_numpy(zero_copy_only=False)
    t = table["t_ns"].to_numpy()
    v = table["value"].to_numpy()
    q = table["quality"].to_numpy()
    order = np.argsort(codes, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(names)))])
    out: dict[str, Arrays] = {}
    for code, name in enumerate(names):
        if bounds[code] < bounds[code + 1]:
            idx = order[bounds[code] : bounds[code + 1]]
            out[str(name)] = (t[idx], v[idx], q[idx])
    return out


def iter_chunks(
    run: Run, channels: list[str], t0: int, t1: int, chunk_ns: int
) -> Iterator[tuple[int, dict[str, Arrays]]]:
    """Role channels of the recording in chunks of recording time `[lo, hi)`."""
    files = segment_files(run.path / "raw")
    if not files:
        return
    dataset = ds.dataset([str(f) for f in files], schema=RAW_SCHEMA, format="parquet")
    wanted = pa.array(channels)
    for lo in range(t0, t1, chunk_ns):
        hi = min(lo + chunk_ns, t1)
        flt = (ds.field("t_ns") >= lo) & (ds.field("t_ns") < hi)
        table = dataset.to_table(filter=flt).unify_dictionaries()
        if table.num_rows:
            table = table.filter(pc.is_in(pc.cast(table["channel"], pa.string()), wanted))
        yield hi, split_channels(table)


class ResultsWriter:
    """Grid-rate results to one Parquet file, appended per chunk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, p: Processed) -> None:
        table = pa.table({"t_ns": p.t_ns, **{k: np.asarray(v) for k, v in p.columns.items()}})
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def replay(
    run_dir: Path,
    opts: ReplayOptions,
    *,
    cfg: Config | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Process a run; write results.parquet, events.jsonl, summary.json (and report.png)."""
    run = open_run(run_dir)
    recorded = recorded_config(run)
    use = cfg or recorded
    rng = run.time_range()
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    if rng is None:
        raise ValueError(f"run {run.run_id} has no raw samples")
    t0 = max(rng[0], opts.t_from_ns) if opts.t_from_ns is not None else rng[0]
    t1 = min(rng[1] + 1, opts.t_to_ns) if opts.t_to_ns is not None else rng[1] + 1
    proc = Processor(use, replay=True)
    for ev in run.events():
        if ev.get("type") == "assay" and "rey_ppm" in ev and int(ev.get("t_ns", 0)) < t1:
            proc.add_assay(int(ev["t_ns"]), float(ev["rey_ppm"]), float(ev.get("u_rey_ppm", 0.0)))
    writer = ResultsWriter(opts.out_dir / "results.parquet")
    events: list[dict[str, Any]] = []
    sinks = _Sinks(use, opts, run.run_id) if (opts.influx or opts.mqtt) else None
    channels = sorted(proc.channels)
    chunk_ns = int((CHUNK_S if opts.speed is None else max(1.0, opts.speed)) * 1e9)
    wall0 = time.perf_counter()
    last: dict[str, float] = {}
    first: dict[str, float] = {}
    n_raw = 0

    def consume(p: Processed | None) -> None:
        if p is None or not len(p):
            return
        writer.write(p)
        events.extend(alarm_event_dict(e) for e in p.events)
        for k in (
            "cum_rey_kg",
            "u95_cum_rey_kg",
            "cum_reo_kg",
            "u95_cum_reo_kg",
            "gap_s",
            "cum_solids_kg",
            "u95_cum_solids_kg",
            "referenced",
            "rho_zero_kg_m3",
            "u_rho_zero_kg_m3",
        ):
            last[k] = float(p.columns[k][-1])
        last["t_ns"] = float(p.t_ns[-1])
        if not first:
            ok = np.flatnonzero(
                np.isfinite(p.columns["cum_rey_kg"]) & np.isfinite(p.columns["rey_kg_h"])
            )
            if ok.size:
                first["t_ns"] = float(p.t_ns[ok[0]])
                first["cum_rey_kg"] = float(p.columns["cum_rey_kg"][ok[0]])
                first["cum_solids_kg"] = float(p.columns["cum_solids_kg"][ok[0]])
        if sinks is not None:
            sinks.send(p, proc)

    try:
        for hi, blocks in iter_chunks(run, channels, t0, t1, chunk_ns):
            n_raw += sum(len(b[0]) for b in blocks.values())
            proc.feed_blocks(blocks)
            consume(proc.advance(hi - 1))
            if progress is not None:
                progress((hi - t0) / max(1, t1 - t0))
            if opts.speed is not None:
                due = (hi - t0) / 1e9 / opts.speed
                time.sleep(max(0.0, due - (time.perf_counter() - wall0)))
        consume(proc.flush())
    finally:
        writer.close()
        if sinks is not None:
            sinks.close()
    wall = time.perf_counter() - wall0
    with open(opts.out_dir / "events.jsonl", "w", encoding="utf-8") as f:
        for ev in events:
            f.write(json.dumps(ev) + "\n")
    span_s = (t1 - t0) / 1e9
    summary: dict[str, Any] = {
        "run_id": run.run_id,
        "run_dir": str(run.path),
        "from_ns": t0,
        "to_ns": t1,
        "duration_s": span_s,
        "raw_samples_processed": n_raw,
        "grid_points": writer.rows,
        "cum_rey_kg": last.get("cum_rey_kg", math.nan),
        "u95_cum_rey_kg": last.get("u95_cum_rey_kg", math.nan),
        "cum_reo_kg": last.get("cum_reo_kg", math.nan),
        "u95_cum_reo_kg": last.get("u95_cum_reo_kg", math.nan),
        "gap_s": last.get("gap_s", math.nan),
        "cum_solids_kg": last.get("cum_solids_kg", math.nan),
        "u95_cum_solids_kg": last.get("u95_cum_solids_kg", math.nan),
        # the densitometer's seawater reference (DESIGN "Estimators"): learned or not
        "densitometer_referenced": bool(last.get("referenced", 0.0) == 1.0),
        "rho_zero_kg_m3": last.get("rho_zero_kg_m3", math.nan),
        "u_rho_zero_kg_m3": last.get("u_rho_zero_kg_m3", math.nan),
        "alarms_raised": _count_raises(events),
        # EEMUA 191 KPIs: of this replay's raise/clear, and of the live run's recorded lifecycle
        "alarm_kpis": replay_kpis(use, events, t0, t1),
        "alarm_kpis_recorded": kpis_from_events(run.events(), t0, t1),
        "late_samples": proc.late_samples,
        "config_differences": {
            k: {"recorded": a, "replay": b}
            for k, (a, b) in config_differences(recorded, use).items()
        },
        "wall_s": wall,
        "speed_x_realtime": span_s / wall if wall > 0 else math.inf,
    }
    truth = _truth(run, first, last)
    if truth is not None:
        summary["truth"] = truth
        rey = truth.get("window_rey_kg")
        if rey:
            daq = last["cum_rey_kg"] - first["cum_rey_kg"]
            summary["window_daq_rey_kg"] = daq
            summary["rey_error_pct"] = 100.0 * (daq - rey) / rey
            summary["truth_in_95"] = abs(daq - rey) <= summary["u95_cum_rey_kg"]
        sol = truth.get("window_solids_kg")
        if sol:
            daq_s = last["cum_solids_kg"] - first["cum_solids_kg"]
            summary["window_daq_solids_kg"] = daq_s
            summary["solids_error_pct"] = 100.0 * (daq_s - sol) / sol
            summary["solids_truth_in_95"] = abs(daq_s - sol) <= summary["u95_cum_solids_kg"]
    _write_json(opts.out_dir / "summary.json", summary)
    if opts.report:
        from chikyu_daq.report import write_report

        write_report(
            opts.out_dir / "results.parquet",
            events,
            opts.out_dir / "report.png",
            title=f"Replay of {run.run_id}",
            truth=truth,
            kpis=summary["alarm_kpis"],
        )
    return summary


def _count_raises(events: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        if e["kind"] == "raise":
            out[e["alarm"]] = out.get(e["alarm"], 0) + 1
    return out


def _truth(run: Run, first: dict[str, float], last: dict[str, float]) -> dict[str, Any] | None:
    """Plant truth of a synthetic run, and REY delivered over the window the DAQ integrated."""
    p = run.path / "truth.json"
    if not p.exists():
        return None
    truth = dict(json.loads(p.read_text(encoding="utf-8")))
    series = run.path / "truth.parquet"
    if series.exists() and first and last:
        tab = pq.read_table(series, columns=["t_ns", "rey_delivered_kg", "solids_delivered_kg"])
        t = tab["t_ns"].to_numpy()
        for name, col in (("rey", "rey_delivered_kg"), ("solids", "solids_delivered_kg")):
            x = tab[col].to_numpy()
            truth[f"window_{name}_kg"] = float(
                np.interp(last["t_ns"], t, x) - np.interp(first["t_ns"], t, x)
            )
    return truth


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x

    path.write_text(json.dumps(clean(dict(data)), indent=2) + "\n", encoding="utf-8")


class _Sinks:
    """Influx and/or MQTT for a replay, on a private event loop in a thread."""

    def __init__(self, cfg: Config, opts: ReplayOptions, run_id: str) -> None:
        import threading

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        rec_off = cfg.model_copy(
            update={"recorder": cfg.recorder.model_copy(update={"enabled": False})}
        )
        self.outputs = Outputs(
            rec_off,
            data_dir=opts.out_dir,
            run_id=f"{run_id}-replay",
            influx_enabled=opts.influx,
            mqtt_enabled=opts.mqtt,
        )
        self._tasks: list[Any] = []
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(30)

    async def _start(self) -> None:
        await self.outputs.start()
        self._tasks = self.outputs.tasks()

    def send(self, p: Processed, proc: Processor) -> None:
        self.outputs.write_results(p, proc.publish_ns)

        def publish() -> None:
            for i in p.at_period(proc.publish_ns):
                self.outputs.publish_row(int(p.t_ns[i]), p.columns, int(i))
            for ev in p.events:
                self.outputs.publish_alarm(alarm_event_dict(ev), proc.active_alarms())

        self._loop.call_soon_threadsafe(publish)

    def close(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.outputs.aclose(60.0), self._loop)
        fut.result(120)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
