"""The worker feeds the processor only on ticks that may compute a publish period: the same
results, on the same ticks, as feeding it every tick (the pipeline's worker driven directly,
its stamping clock moved by the test)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from chikyu_daq.live.pipeline import TICK_S, Pipeline
from chikyu_daq.live.processor import Processed, Processor
from drivers.sample import Blocks, SampleBlock
from dsp.params import INPUT_RANGES
from tests.iface_servers import reference

S = 1_000_000_000
T0 = 1_800_000_000 * S + 123_456_789
POLL_NS = 100_000_000


def _ticks(cfg_proc: Processor, n: int) -> list[tuple[int, Blocks]]:
    """`n` ticks of 0.2 s: every role channel polled at 10 Hz, a mid-range value, one BAD."""
    rng = np.random.default_rng(7)
    out = []
    for k in range(1, n + 1):
        now = T0 + round(k * TICK_S * S)
        t = np.arange(now - round(TICK_S * S) + 1, now + 1, POLL_NS, dtype=np.int64)
        blocks: Blocks = {}
        for ch in sorted(cfg_proc.channels):
            lo = max(INPUT_RANGES[r][0] for r, c in cfg_proc.inputs.items() if c == ch)
            hi = min(INPUT_RANGES[r][1] for r, c in cfg_proc.inputs.items() if c == ch)
            v = (lo + hi) / 2 + (hi - lo) * 0.01 * rng.standard_normal(t.shape[0])
            q = np.zeros(t.shape[0], np.uint8)
            q[rng.random(t.shape[0]) < 0.05] = 2
            blocks[ch] = SampleBlock(t + rng.integers(0, 5_000_000, t.shape[0]), v, q)
        out.append((now, blocks))
    return out


def _rows(p: Processed | None) -> tuple[list[int], dict[str, np.ndarray]]:
    if p is None or not len(p):
        return [], {}
    return p.t_ns.tolist(), p.columns


def test_feeding_on_due_ticks_computes_what_feeding_every_tick_computes(tmp_path: Path) -> None:
    cfg = reference()
    now = [T0]
    pipe = Pipeline(
        cfg,
        data_dir=tmp_path,
        clock=lambda: now[0],
        influx_enabled=False,
        mqtt_enabled=False,
    )
    feeds = []
    feed = pipe.processor.feed_blocks
    pipe.processor.feed_blocks = lambda blocks: (feeds.append(len(blocks)), feed(blocks))[1]  # type: ignore[method-assign]
    every = Processor(cfg)
    ticks = _ticks(every, 60)  # 12 s
    try:
        for k, (t_now, blocks) in enumerate(ticks):
            now[0] = t_now
            if k == 33:  # a lab assay between due ticks: applied after the samples before it
                pipe.inject_assay(t_now - 3 * S, 2100.0, 80.0, "s1")
            got = _rows(pipe._work(blocks, final=False))
            every.feed_blocks(blocks)
            if k == 33:
                every.add_assay(t_now - 3 * S, 2100.0, 80.0)
            want = _rows(every.advance(whole_periods=True))
            assert got[0] == want[0], f"tick {k}"
            for name, col in want[1].items():
                np.testing.assert_array_equal(got[1][name], col, err_msg=f"{name}, tick {k}")
        assert every.points_done >= 80  # the grid ran for most of the 12 s
        assert len(feeds) <= len(ticks) // 2  # fed on due ticks only, not on every tick
        got = _rows(pipe._work({}, final=True))
        want = _rows(every.flush())
        assert got[0] == want[0]
        for name, col in want[1].items():
            np.testing.assert_array_equal(got[1][name], col, err_msg=name)
    finally:
        assert pipe.outputs.recorder is not None
        pipe.outputs.recorder.close()


def test_ticks_that_only_record_stay_on_the_loop(tmp_path: Path, monkeypatch: Any) -> None:
    """With InfluxDB off, a tick that feeds and computes nothing records on the loop (no worker
    hand-off); the results, and what is recorded, are those of a worker on every tick."""
    cfg = reference()
    now = [T0]
    pipe = Pipeline(
        cfg, data_dir=tmp_path, clock=lambda: now[0], influx_enabled=False, mqtt_enabled=False
    )
    handoffs = []

    async def to_thread(fn: Any, *args: Any) -> Any:
        handoffs.append(args)
        return fn(*args)

    monkeypatch.setattr("chikyu_daq.live.pipeline.asyncio.to_thread", to_thread)
    got: list[Processed] = []
    pipe._on_processed = got.append
    recorded = []
    write_raw = pipe.outputs.write_raw
    pipe.outputs.write_raw = lambda b: (recorded.append(b), write_raw(b))[1]  # type: ignore[method-assign]
    every = Processor(cfg)
    ticks = _ticks(every, 60)
    want: list[int] = []

    async def run() -> None:
        for t_now, blocks in ticks:
            now[0] = t_now
            pipe._drain = lambda b=blocks: b  # type: ignore[method-assign]
            await pipe._tick(final=False)
            every.feed_blocks(blocks)
            want.extend(_rows(every.advance(whole_periods=True))[0])

    asyncio.run(run())
    try:
        assert [t for p in got for t in p.t_ns.tolist()] == want
        assert len(want) >= 80
        assert len(recorded) == len(ticks)  # every tick recorded, in order
        assert all(r is b for r, (_, b) in zip(recorded, ticks, strict=True))
        assert len(handoffs) <= len(ticks) // 2  # was: every tick
    finally:
        assert pipe.outputs.recorder is not None
        pipe.outputs.recorder.close()
