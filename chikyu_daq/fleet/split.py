"""One long run split in time: partitions with a warm-up overlap, stitched to equal a serial replay.

Every kernel remembers a bounded past: the transit buffer (`max_transit_s`), the sliding windows
(CV, comparison, slope, Hampel, the oscillation FFT ring and its hop), the alarm timers
(`min_duration_s`) and the staleness hold. A partition that starts `warmup_s(cfg)` before its
first kept grid point has forgotten that it started late by the time it gets there. Two details
make the state *bit*-identical rather than merely close:

- window sums are refreshed exactly whenever a ring wraps, and the FFT runs every hop, both
  counted from the processor's first grid point; so the warm-up starts on a multiple of
  `period_points(cfg)` (the least common multiple of those ring lengths) after the serial
  replay's first grid point, and partition bounds lie on that same lattice;
- the integrals (cumulative REY/REO, their systematic and random variance sums, the gap time
  and count) remember everything since the run started. They are the only state a warm-up
  cannot rebuild, so they are handed over: a first pass (in parallel) measures each partition's
  increments with the integrals zeroed at its first kept point; the second pass (in parallel)
  starts each partition with the sum of the increments before it. The kernel then carries on
  as in a serial replay; the only difference is the order of floating-point additions in the
  handed-over totals (relative error ~1e-15).

One more integral is not handed over: the running pumped volume in which E2 looks up the
transit. A partition counts it from its own start, so `ms_e2_kg_s`, `transit_s` and
`disagreement_z` come from differences of other large numbers and agree to ~1e-10 (relative),
not bit for bit; making them exact would need the serial sum itself, i.e. no parallelism.

The processor has no public hook for this (it never needs one live), so `_integrals` and
`_start_grid_at` reach into its state; they are the one place that knows those slots.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from chikyu_daq.config import Config, parse_config
from chikyu_daq.fleet.cluster import Job, run_jobs
from chikyu_daq.outputs import alarm_event_dict
from chikyu_daq.params import chain_params
from chikyu_daq.processor import Processed, Processor
from chikyu_daq.recording import open_run
from chikyu_daq.replay import CHUNK_S, ResultsWriter, iter_chunks, recorded_config
from dsp import kernel as K
from dsp.params import pack

#: Integral state handed from partition to partition: float slots, int slots, systematic sums.
F_SLOTS = (K.F_CUM, K.F_GAP, K.F_ACC_RAND)
I_SLOTS = (K.S_GAPS,)


@dataclass(frozen=True)
class Part:
    """Partition `index`: samples from `feed_ns`, grid from `warm_ns`, keep `[lo_ns, hi_ns)`."""

    index: int
    feed_ns: int
    warm_ns: int
    lo_ns: int
    hi_ns: int
    last: bool


def warmup_s(cfg: Config) -> float:
    """Seconds of history every kernel needs: transit buffer + longest window + longest alarm
    minimum duration + the staleness hold (each a config value, none guessed)."""
    p = chain_params(cfg)
    st = cfg.stability
    step = 1.0 / cfg.processing.grid_hz
    windows = (
        st.cv_window_s,
        st.compare_window_s,
        st.slope_window_s,
        st.hampel_window * step,
        st.osc_n_fft * st.osc_decim * step + st.osc_update_s,
    )
    alarms = [a.min_duration_s for a in cfg.alarms.values()] + [
        spec.min_duration_s for spec in p.alarm_specs()
    ]
    return float(
        st.max_transit_s
        + max(windows)
        + max(alarms, default=0.0)
        + cfg.processing.staleness_s
        + cfg.processing.max_gap_s
    )


def period_points(cfg: Config) -> int:
    """Grid points after which every ring refresh and FFT hop falls on the same grid index."""
    _, pi, _, _ = pack(chain_params(cfg))
    lane = int(pi[K.P.I_LANE])
    rings = (
        int(pi[K.P.I_W_CV]),
        int(pi[K.P.I_W_CMP]) * lane,
        int(pi[K.P.I_W_SLOPE]) * lane,
        lane,
        int(pi[K.P.I_HOP]) * int(pi[K.P.I_DECIM]),
        int(pi[K.P.I_DECIM]),
    )
    return math.lcm(*rings)


def first_grid_ns(run_dir: Path, cfg: Config) -> tuple[int, int, int]:
    """(first raw sample, first grid point of a serial replay, last raw sample)."""
    run = open_run(run_dir)
    rng = run.time_range()
    if rng is None:
        raise ValueError(f"run {run.run_id} has no raw samples")
    proc = Processor(cfg, replay=True)
    chunk = int(CHUNK_S * 1e9)
    for _, blocks in iter_chunks(run, sorted(proc.channels), rng[0], rng[1] + 1, chunk):
        firsts = [int(b[0][0]) for b in blocks.values() if len(b[0])]
        if firsts:
            step = proc.step_ns
            return rng[0], -(-min(firsts) // step) * step, rng[1]
    raise ValueError(f"run {run.run_id} has no samples of the role channels")


def plan(run_dir: Path, cfg: Config, part_s: float) -> list[Part]:
    """Partitions of about `part_s` on the period lattice, each with its warm-up."""
    t_first, g0, last = first_grid_ns(run_dir, cfg)
    step = round(1e9 / cfg.processing.grid_hz)
    period = period_points(cfg) * step
    warm = -(-round(warmup_s(cfg) * 1e9) // period) * period
    size = max(1, round(part_s * 1e9 / period)) * period
    bounds = list(range(g0, last + 1, size))
    parts = []
    for i, lo in enumerate(bounds):
        is_last = i == len(bounds) - 1
        hi = last + 1 if is_last else lo + size
        warm_ns = max(g0, lo - warm)
        # a warm-up from the run's start sees the same samples before g0 as a serial replay
        parts.append(Part(i, t_first if warm_ns == g0 else warm_ns, warm_ns, lo, hi, is_last))
    return parts


# -- state hand-over ---------------------------------------------------------------------------
def _integrals(proc: Processor) -> dict[str, Any]:
    s = proc._state
    return {
        "f": [float(s.sf[k]) for k in F_SLOTS],
        "i": [int(s.si[k]) for k in I_SLOTS],
        "sys": [float(x) for x in s.acc_sys],
    }


def _set_integrals(proc: Processor, value: dict[str, Any]) -> None:
    s = proc._state
    for k, v in zip(F_SLOTS, value["f"], strict=True):
        s.sf[k] = v
    for k, n in zip(I_SLOTS, value["i"], strict=True):
        s.si[k] = n
    s.acc_sys[:] = value["sys"]


def _start_grid_at(proc: Processor, t_ns: int) -> None:
    proc._next_ns = t_ns


ZERO = {"f": [0.0] * len(F_SLOTS), "i": [0] * len(I_SLOTS), "sys": [0.0] * K.N_SYS}


def add_integrals(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    return {
        "f": [x + y for x, y in zip(a["f"], b["f"], strict=True)],
        "i": [x + y for x, y in zip(a["i"], b["i"], strict=True)],
        "sys": [x + y for x, y in zip(a["sys"], b["sys"], strict=True)],
    }


# -- one partition (a Dask task) ---------------------------------------------------------------
def replay_part(
    run_dir: str,
    part: Part,
    config: dict[str, Any] | None,
    start: dict[str, Any],
    out_file: str | None,
) -> dict[str, Any]:
    """Replay `part`; the integrals are set to `start` at its first kept point. Writes the kept
    results to `out_file` (if given) and returns the integrals' increments over the partition
    and its kept alarm events."""
    run = open_run(run_dir)
    cfg = parse_config(config, "--config") if config else recorded_config(run)
    proc = Processor(cfg, replay=True)
    end = part.hi_ns
    for ev in run.events():
        if ev.get("type") == "assay" and "rey_ppm" in ev:  # the same assays a serial replay sees
            proc.add_assay(int(ev["t_ns"]), float(ev["rey_ppm"]), float(ev.get("u_rey_ppm", 0.0)))
    writer = ResultsWriter(Path(out_file)) if out_file else None
    events: list[dict[str, Any]] = []
    chunk = int(CHUNK_S * 1e9)
    channels = sorted(proc.channels)
    rows = 0

    def keep(p: Processed | None) -> None:
        nonlocal rows
        if p is None or not len(p):
            return
        m = (p.t_ns >= part.lo_ns) & (p.t_ns < part.hi_ns)
        if part.last:
            m = p.t_ns >= part.lo_ns
        events.extend(alarm_event_dict(e) for e in p.events if e.t_ns >= part.lo_ns)
        if writer is not None and m.any():
            idx = np.flatnonzero(m)
            cols = {k: v[idx] for k, v in p.columns.items()}
            writer.write(Processed(p.t_ns[idx], cols, []))
        rows += int(m.sum())

    started = False
    # warm-up (none for the first partition), then the integrals are handed over
    for hi, blocks in iter_chunks(run, channels, part.feed_ns, part.lo_ns, chunk):
        proc.feed_blocks(blocks)
        if not started:
            _start_grid_at(proc, part.warm_ns)
            started = True
        proc.advance(hi - 1)
    _set_integrals(proc, start)
    for hi, blocks in iter_chunks(run, channels, max(part.lo_ns, part.feed_ns), end, chunk):
        proc.feed_blocks(blocks)
        if not started:
            _start_grid_at(proc, part.warm_ns)
            started = True
        keep(proc.advance(hi - 1))
    if part.last:
        keep(proc.flush())
    if writer is not None:
        writer.close()
    now = _integrals(proc)
    delta = {
        "f": [x - y for x, y in zip(now["f"], start["f"], strict=True)],
        "i": [x - y for x, y in zip(now["i"], start["i"], strict=True)],
        "sys": [x - y for x, y in zip(now["sys"], start["sys"], strict=True)],
    }
    return {"index": part.index, "delta": delta, "end": now, "events": events, "rows": rows}


# -- the whole split replay --------------------------------------------------------------------
def replay_split(
    client: Any,
    run_dir: Path,
    out: Path,
    *,
    part_s: float,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Split `run_dir` into partitions, replay them on the cluster in two parallel passes and
    stitch `results.parquet` and `events.jsonl` into `out`. Returns a small summary."""
    run = open_run(run_dir)
    cfg = parse_config(config, "--config") if config else recorded_config(run)
    parts = plan(run.path, cfg, part_s)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "parts"
    tmp.mkdir(exist_ok=True)
    path = str(run.path)
    # pass 1: increments of every partition but the last (partition 0 is final already)
    first = [
        Job(f"split-1-{p.index}", replay_part, (path, p, config, ZERO,
            str(tmp / "part-000000.parquet") if p.index == 0 else None), {})
        for p in parts[:-1] or parts
    ]  # fmt: skip
    res1 = run_jobs(client, first, what="split pass 1")
    _raise_failed(res1)
    starts = [ZERO]
    for o in res1:
        starts.append(add_integrals(starts[-1], o.result["delta"]))
    second = [
        Job(f"split-2-{p.index}", replay_part,
            (path, p, config, starts[p.index], str(tmp / f"part-{p.index:06d}.parquet")), {})
        for p in parts[1:]
    ]  # fmt: skip
    res2 = run_jobs(client, second, what="split pass 2")
    _raise_failed(res2)
    results = [res1[0].result] + [o.result for o in res2]
    stitch(sorted(tmp.glob("part-*.parquet")), out / "results.parquet")
    with open(out / "events.jsonl", "w", encoding="utf-8") as f:
        for r in results:
            for ev in r["events"]:
                f.write(json.dumps(ev) + "\n")
    for p in tmp.glob("part-*.parquet"):
        p.unlink()
    tmp.rmdir()
    last = pq.ParquetFile(out / "results.parquet")
    tail = last.read_row_group(last.num_row_groups - 1, columns=["cum_rey_kg", "u95_cum_rey_kg"])
    summary = {
        "run_id": run.run_id,
        "cum_rey_kg": float(tail["cum_rey_kg"][-1].as_py()) if tail.num_rows else math.nan,
        "u95_cum_rey_kg": float(tail["u95_cum_rey_kg"][-1].as_py()) if tail.num_rows else math.nan,
        "partitions": len(parts),
        "warmup_s": warmup_s(cfg),
        "warmup_used_s": max((p.lo_ns - p.warm_ns) / 1e9 for p in parts),
        "period_s": period_points(cfg) / cfg.processing.grid_hz,
        "grid_points": sum(r["rows"] for r in results),
        "bounds_ns": [[p.lo_ns, p.hi_ns] for p in parts],
    }
    (out / "split.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _raise_failed(outcomes: list[Any]) -> None:
    bad = [f"{o.job.label}: {o.error}" for o in outcomes if o.error is not None]
    if bad:
        raise RuntimeError("split replay failed: " + "; ".join(bad))


def stitch(files: list[Path], dest: Path) -> None:
    """Concatenate partition result files in time order into one Parquet file (streaming)."""
    writer: pq.ParquetWriter | None = None
    try:
        for f in files:
            table = pq.read_table(f)
            if writer is None:
                writer = pq.ParquetWriter(dest, table.schema, compression="zstd")
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        pq.write_table(pa.table({"t_ns": pa.array([], pa.int64())}), dest)
