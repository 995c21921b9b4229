"""Replay a recorded run through the same processor (and optionally sinks), clocked by the data.

The recording is read in chunks of recording time, only the channels the estimators use, and
fed to a `Processor` exactly as the live daemon would have; the kernels are chunk-invariant, so
a replay with the run's own config reproduces the live results on the same grid. Another config
(`-c`) changes physics or thresholds; the summary names every constant that differs.

Steps, each a function: `plan_replay` (open the run, config, window, chunk size),
`start_processor` (fed the recorded events: `feed_recorded`), `process_chunks` (per chunk:
read, feed, compute, hand to `ReplayOutputs`, which appends a results row group and the
chunk's events as they come), `summarise` (totals, alarm KPIs, truth). Memory is bounded by
a chunk and a raw row group, whatever the run's length.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from chikyu_daq.alarms.kpi import kpis_from_events
from chikyu_daq.alarms.policy import replay_kpis
from chikyu_daq.config.model import Config, ConfigError, parse_config
from chikyu_daq.live.processor import Processed, Processor
from chikyu_daq.sinks.fanout import Outputs
from chikyu_daq.store.events import (
    AlarmEdge,
    AssayEvent,
    ClockStep,
    Event,
    SeawaterReference,
    encode,
)
from chikyu_daq.store.reader import Run, open_run
from chikyu_daq.store.reader import split_channels as split_channels  # the importer's
from drivers.sample import Blocks
from dsp.fields import FIELD_BY_NAME, FIELDS

log = logging.getLogger(__name__)

CHUNK_S = 3600.0
#: Config sections whose differences change results (named in the summary).
RESULT_SECTIONS = ("processing", "roles", "physics", "uncertainty", "grade", "stability", "alarms")
#: Output fields whose value at the window's end the summary reports under their own names.
SUMMARY_TOTALS = tuple(
    FIELD_BY_NAME[name].name
    for name in (
        "cum_rey_kg",
        "u95_cum_rey_kg",
        "cum_reo_kg",
        "u95_cum_reo_kg",
        "gap_s",
        "cum_solids_kg",
        "u95_cum_solids_kg",
        "rho_zero_kg_m3",  # the densitometer's seawater reference (DESIGN "Estimators")
        "u_rho_zero_kg_m3",
        "cum_energy_kwh",  # the drives' energy and kWh per dry tonne (DESIGN "REY yield")
        "specific_energy_kwh_t",
    )
)


@dataclass
class ReplayOptions:
    out_dir: Path
    t_from_ns: int | None = None
    t_to_ns: int | None = None
    speed: float | None = None  # None: as fast as possible; N: N x real time
    influx: bool = False
    mqtt: bool = False
    report: bool = True
    chunk_s: float = CHUNK_S  # recording time per read-and-compute step (memory, not results)


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


def iter_chunks(
    run: Run, channels: list[str], t0: int, t1: int, chunk_ns: int
) -> Iterator[tuple[int, Blocks]]:
    """Role channels of the recording in chunks of recording time `[lo, hi)` (streamed)."""
    return run.raw_chunks(channels, t0, t1, chunk_ns)


class ResultsWriter:
    """Grid-rate results to one Parquet file, one row group per chunk as it comes.

    No dictionary pages (float results rarely repeat: trying them cost more than the whole
    compression pass), floats byte-stream-split (then compressed 19 % smaller, 12 % faster),
    LZ4 (20 % faster than zstd's fast level -1, 9 % larger), statistics on `t_ns` only (what
    readers filter on) and columns declared non-null (results are never null, a missing
    value is NaN: no definition levels to encode, 30 % faster)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: pq.ParquetWriter | None = None
        self._schema: pa.Schema | None = None
        self.rows = 0

    def write(self, p: Processed) -> None:
        arrays = {"t_ns": p.t_ns, **p.columns}
        if self._schema is None:
            self._schema = pa.schema(
                [pa.field(k, pa.from_numpy_dtype(np.asarray(v).dtype), nullable=False)
                 for k, v in arrays.items()]
            )  # fmt: skip
        table = pa.Table.from_arrays([pa.array(np.asarray(v)) for v in arrays.values()],
                                     schema=self._schema)  # fmt: skip
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self.path,
                table.schema,
                compression="lz4",
                use_dictionary=False,
                write_statistics=["t_ns"],
                column_encoding={
                    f.name: "BYTE_STREAM_SPLIT"
                    for f in table.schema
                    if pa.types.is_floating(f.type)
                },
            )
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay reads and with which config, decided before any sample is read."""

    run: Run
    recorded: Config
    cfg: Config
    t0: int
    t1: int
    chunk_ns: int

    @property
    def span_s(self) -> float:
        return (self.t1 - self.t0) / 1e9


def plan_replay(run_dir: Path, opts: ReplayOptions, cfg: Config | None = None) -> ReplayPlan:
    """Step 1: open the run, pick the config and the window `[t0, t1)` and the chunk size."""
    run = open_run(run_dir)
    recorded = recorded_config(run)
    rng = run.time_range()
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    if rng is None:
        raise ValueError(f"run {run.run_id} has no raw samples")
    t0 = max(rng[0], opts.t_from_ns) if opts.t_from_ns is not None else rng[0]
    t1 = min(rng[1] + 1, opts.t_to_ns) if opts.t_to_ns is not None else rng[1] + 1
    chunk_ns = int((opts.chunk_s if opts.speed is None else max(1.0, opts.speed)) * 1e9)
    return ReplayPlan(run, recorded, cfg or recorded, t0, t1, chunk_ns)


def start_processor(plan: ReplayPlan) -> Processor:
    """Step 2: a replay-mode processor fed what the live daemon acted on before the window
    ends (`feed_recorded`)."""
    proc = Processor(plan.cfg, replay=True)
    feed_recorded(proc, plan.run.records(), before_ns=plan.t1)
    return proc


def feed_recorded(
    proc: Processor,
    records: Iterable[Event],
    *,
    before_ns: int | None = None,
    references_after_ns: int | None = None,
) -> None:
    """Give a replay processor every recorded event the live daemon acted on, as it acted:
    each assay from where it was applied and each operator-commanded seawater reference as
    applied (sampled/started before `before_ns`; references only if they start after
    `references_after_ns`), and every forward host clock step it saw (without one a forward
    jump of the stamps is an outage, processed as stamped). The one definition serial and
    split replays share."""
    for ev in records:
        if isinstance(ev, AssayEvent) and (before_ns is None or ev.t_ns < before_ns):
            proc.add_assay(ev.t_ns, ev.rey_ppm, ev.u_rey_ppm, ev.applied_ns)  # as live did
        elif (
            isinstance(ev, SeawaterReference)
            and (before_ns is None or ev.t_ns < before_ns)
            and (references_after_ns is None or ev.t_ns > references_after_ns)
        ):
            proc.add_reference(ev)  # recorded as applied live: the same grid points
        elif isinstance(ev, ClockStep) and ev.step_s > 0:
            proc.expect_forward_step(ev.t_ns)  # as the live daemon saw it


@dataclass
class Tally:
    """What the summary needs of the results, taken as they stream past: the last row of every
    output field, the first row with a finite REY total, counts and the alarm events."""

    last: dict[str, float] = field(default_factory=dict)
    first: dict[str, float] = field(default_factory=dict)
    raw_samples: int = 0
    events: list[AlarmEdge] = field(default_factory=list)

    def add(self, p: Processed) -> None:
        self.last = {f.name: float(p.columns[f.name][-1]) for f in FIELDS if f.name in p.columns}
        self.last["t_ns"] = float(p.t_ns[-1])
        if self.first:
            return
        ok = np.flatnonzero(
            np.isfinite(p.columns["cum_rey_kg"]) & np.isfinite(p.columns["rey_kg_h"])
        )
        if ok.size:
            self.first = {"t_ns": float(p.t_ns[ok[0]])}
            self.first.update({f.name: float(p.columns[f.name][ok[0]]) for f in FIELDS})


class ReplayOutputs:
    """Where results go as they are computed: results.parquet (a row group per chunk),
    events.jsonl (alarm edges and clock re-bases, appended per chunk), the optional sinks,
    and the summary's tally."""

    def __init__(self, plan: ReplayPlan, opts: ReplayOptions) -> None:
        self.writer = ResultsWriter(opts.out_dir / "results.parquet")
        self.tally = Tally()
        self._events = open(opts.out_dir / "events.jsonl", "w", encoding="utf-8")  # noqa: SIM115
        self._sinks = (
            _Sinks(plan.cfg, opts, plan.run.run_id) if (opts.influx or opts.mqtt) else None
        )

    def consume(self, p: Processed | None, proc: Processor) -> None:
        if p is None or not len(p):
            return
        self.writer.write(p)
        new = [AlarmEdge.of(e) for e in p.events]
        # as the live daemon records them: the alarm edges, then the clock re-bases
        records: list[Event] = [*new, *p.notes]
        self._events.writelines(json.dumps(encode(ev)) + "\n" for ev in records)
        self.tally.events.extend(new)
        self.tally.add(p)
        if self._sinks is not None:
            self._sinks.send(p, proc)

    def close(self) -> None:
        try:
            self.writer.close()
            self._events.close()
        finally:
            if self._sinks is not None:
                self._sinks.close()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a replay's loop, as it was after.

    The first chunk loads the compiled kernels, whose typing tables (~60,000 objects) set off
    two full collections scanning every object in the process: 0.18 s of a 24 h replay's
    2.8 s, to free nothing. The loop makes no reference cycles (arrays, dicts and lists, freed
    as their last reference goes), so its memory stays the same without them."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def process_chunks(
    plan: ReplayPlan,
    proc: Processor,
    out: ReplayOutputs,
    speed: float | None,
    progress: Callable[[float], None] | None,
) -> float:
    """Step 3: per chunk of recording time, feed the processor, compute up to the chunk's end
    and hand the results on; paced to `speed` x real time if given. Returns wall seconds."""
    wall0 = time.perf_counter()
    channels = sorted(proc.channels)
    for hi, blocks in iter_chunks(plan.run, channels, plan.t0, plan.t1, plan.chunk_ns):
        out.tally.raw_samples += sum(len(b[0]) for b in blocks.values())
        proc.feed_blocks(blocks)
        # clocked by the samples, as live (newest − lateness), not by the chunk's end: the
        # grid must not run into a forward clock step's gap before the far side is read
        out.consume(proc.advance(), proc)
        if progress is not None:
            progress((hi - plan.t0) / max(1, plan.t1 - plan.t0))
        if speed is not None:
            due = (hi - plan.t0) / 1e9 / speed
            time.sleep(max(0.0, due - (time.perf_counter() - wall0)))
    out.consume(proc.flush(), proc)
    return time.perf_counter() - wall0


def summarise(plan: ReplayPlan, proc: Processor, out: ReplayOutputs, wall: float) -> dict[str, Any]:
    """Step 4: totals at the end, alarms and their KPIs, config differences, speed, truth."""
    last, events = out.tally.last, out.tally.events
    run, t0, t1 = plan.run, plan.t0, plan.t1

    def end(name: str) -> float:
        return last.get(name, math.nan)

    summary: dict[str, Any] = {
        "run_id": run.run_id,
        "run_dir": str(run.path),
        "from_ns": t0,
        "to_ns": t1,
        "duration_s": plan.span_s,
        "raw_samples_processed": out.tally.raw_samples,
        "grid_points": out.writer.rows,
        **{name: end(name) for name in SUMMARY_TOTALS},
        # the densitometer's seawater reference (DESIGN "Estimators"): learned or not
        "densitometer_referenced": bool(end("referenced") == 1.0),
        "alarms_raised": _count_raises(events),
        # EEMUA 191 KPIs: of this replay's raise/clear, and of the live run's recorded lifecycle
        "alarm_kpis": replay_kpis(plan.cfg, events, t0, t1),
        "alarm_kpis_recorded": kpis_from_events(run.records(), t0, t1),
        "late_samples": proc.late_samples,
        "clock_rebases": proc.clock_rebases,  # re-bases across steps of the recording's clock
        "config_differences": {
            k: {"recorded": a, "replay": b}
            for k, (a, b) in config_differences(plan.recorded, plan.cfg).items()
        },
        "wall_s": wall,
        "speed_x_realtime": plan.span_s / wall if wall > 0 else math.inf,
    }
    truth = _truth(run, out.tally.first, last)
    if truth is not None:
        summary["truth"] = truth
        summary.update(_against_truth(truth, out.tally.first, last, summary))
    return summary


def replay(
    run_dir: Path,
    opts: ReplayOptions,
    *,
    cfg: Config | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Process a run; write results.parquet, events.jsonl, summary.json (and report.png)."""
    plan = plan_replay(run_dir, opts, cfg)
    proc = start_processor(plan)
    out = ReplayOutputs(plan, opts)
    try:
        with gc_paused():
            wall = process_chunks(plan, proc, out, opts.speed, progress)
    finally:
        out.close()
    summary = summarise(plan, proc, out, wall)
    _write_json(opts.out_dir / "summary.json", summary)
    if opts.report:
        from chikyu_daq.replay.report import write_report

        write_report(
            opts.out_dir / "results.parquet",
            out.tally.events,
            opts.out_dir / "report.png",
            title=f"Replay of {plan.run.run_id}",
            truth=summary.get("truth"),
            kpis=summary["alarm_kpis"],
        )
    return summary


def _against_truth(
    truth: Mapping[str, Any],
    first: Mapping[str, float],
    last: Mapping[str, float],
    summary: Mapping[str, Any],
) -> dict[str, Any]:
    """The DAQ's REY and solids over the window against the plant's, and whether within 95 %."""
    out: dict[str, Any] = {}
    for plant, total, u95, (daq_key, error_key, within_key) in _AGAINST_TRUTH:
        want = truth.get(plant)
        if want:
            daq = last[total] - first[total]
            out[daq_key] = daq
            out[error_key] = 100.0 * (daq - want) / want
            out[within_key] = abs(daq - want) <= summary[u95]
    return out


#: (plant truth over the window, DAQ total, its 95 % half-width, the summary keys written)
_AGAINST_TRUTH = (
    (
        "window_rey_kg",
        "cum_rey_kg",
        "u95_cum_rey_kg",
        ("window_daq_rey_kg", "rey_error_pct", "truth_in_95"),
    ),
    (
        "window_solids_kg",
        "cum_solids_kg",
        "u95_cum_solids_kg",
        ("window_daq_solids_kg", "solids_error_pct", "solids_truth_in_95"),
    ),
)


def _count_raises(events: list[AlarmEdge]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in events:
        if e.kind == "raise":
            out[e.alarm] = out.get(e.alarm, 0) + 1
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
                self.outputs.publish_alarm(AlarmEdge.of(ev), proc.active_alarms())

        self._loop.call_soon_threadsafe(publish)

    def close(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.outputs.aclose(60.0), self._loop)
        fut.result(120)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
