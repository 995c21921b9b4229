"""Outputs benchmark, as JSON (printed, and written to --out: a directory gets outputs.json).

- encoder: `encode_block` vs influxdb-client's Point API;
- raw_encode: the live path's raw samples to line protocol, reference-installation ticks (all
  80 channels at their configured rates, 20 ticks/s): `RawEncoder` (today's `write_raw`) vs the
  regroup-by-device + `encode_channels` path it replaced, alternating rounds in the same run,
  byte-identical output checked; health_point: the 1 Hz health line, `encode_point` vs the
  per-field `encode_block` it replaced;
- drain: spool drain into a real influxd beside influxd's own raw ingest rate in the same run
  (a plain loop posting the same lines pre-encoded as gzipped 5,000-line batches over one
  keep-alive connection; before and after the drain, each into a fresh database);
- live_upload: the InfluxDB output at reference rates in-process, as the daemon runs it
  (`Outputs` with a v1 spool and uploader into a real influxd, a worker thread writing the
  reference raw ticks at the daemon's ~6 ticks/s, the 1 Hz health point on the event loop):
  CPU share of this process (all threads) over the window, the same with the uploader off
  (what the upload itself costs is the difference) and requests per second;
- recorder write and read throughput.

    python benchmarks/bench_outputs.py --out benchmarks/out

Needs Debian's `influxdb` (influxd) for the drain; without it that part reports `skipped`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import http.client
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from publish import publish

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chikyu_daq.sinks.influx.lineproto import encode_block  # noqa: E402
from chikyu_daq.sinks.influx.sink import Uploader, V1Writer  # noqa: E402
from chikyu_daq.sinks.influx.spool import Spool  # noqa: E402
from chikyu_daq.store.reader import open_run  # noqa: E402
from chikyu_daq.store.writer import Recorder  # noqa: E402
from drivers.sample import SampleBlock  # noqa: E402

T0 = 1_700_000_000_000_000_000
TAGS = {"vessel": "chikyu", "run": "bench"}
RAW_BATCH = 5000  # lines per batch, the uploader's default batch_lines


def fields(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "volume_flow": 330.0 + rng.standard_normal(n),
        "volume_flow_q": np.zeros(n, np.uint8),
        "velocity": 2.9 + 0.01 * rng.standard_normal(n),
        "velocity_q": np.zeros(n, np.uint8),
    }


def bench_encoder(n: int = 200_000, n_point: int = 20_000) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    t = T0 + np.arange(n, dtype=np.int64) * 100_000_000
    f = fields(n, rng)
    encode_block("ft201", TAGS, t[:1000], {k: v[:1000] for k, v in f.items()})  # warm-up
    t_start = time.perf_counter()
    out = encode_block("ft201", TAGS, t, f)
    ours_s = time.perf_counter() - t_start

    from influxdb_client import Point, WritePrecision

    cols = {k: v[:n_point].tolist() for k, v in f.items()}
    ts = t[:n_point].tolist()
    t_start = time.perf_counter()
    lines = []
    for i in range(n_point):
        p = Point("ft201").tag("vessel", "chikyu").tag("run", "bench")
        for k, v in cols.items():
            p = p.field(k, v[i])
        lines.append(p.time(ts[i], WritePrecision.NS).to_line_protocol())
    point_s = time.perf_counter() - t_start
    ours = n / ours_s
    theirs = n_point / point_s
    return {
        "lines": n,
        "fields_per_line": len(f),
        "bytes": len(out),
        "encode_block_lines_per_s": round(ours),
        "influxdb_client_point_lines_per_s": round(theirs),
        "point_api_lines_measured": n_point,
        "speedup": round(ours / theirs, 1),
    }


def reference_ticks(n_ticks: int, tick_s: float = 0.05) -> list[dict[str, Any]]:
    """Raw blocks as the hub hands them to `write_raw`: every channel of the reference
    installation, each device's channels sharing its poll times, `poll_hz` (DT-201: 2 Hz)."""
    from chikyu_daq.config.model import load_config
    from drivers.acquisition import Acquisition

    cfg = load_config(REPO / "config" / "reference.toml")
    chans = Acquisition(cfg.buses, cfg.maps, cfg.sentences, cfg.devices, None).channels  # type: ignore[arg-type]
    rng = np.random.default_rng(3)
    per_dev: dict[str, list[str]] = {}
    for ch in chans:
        per_dev.setdefault(ch.partition(".")[0], []).append(ch)
    period = {d: 1.0 / (cfg.devices[d].poll_hz or 2.0) for d in per_dev}
    ticks = []
    for k in range(n_ticks):
        tick: dict[str, Any] = {}
        for dev, names in per_dev.items():
            lo, hi = k * tick_s, (k + 1) * tick_s
            polls = np.arange(np.ceil(lo / period[dev]), np.ceil(hi / period[dev]))
            t = T0 + np.round(polls * period[dev] * 1e9).astype(np.int64) + 1234
            for ch in names:  # each channel its own arrays, as the hub builds them
                v = 100.0 + rng.standard_normal(len(t))
                tick[ch] = (t.copy(), v, np.zeros(len(t), np.uint8))
        ticks.append(tick)
    return ticks


def bench_raw_encode(n_ticks: int = 400, rounds: int = 5) -> dict[str, Any]:
    from chikyu_daq.sinks.influx.lineproto import EncodeStats, RawEncoder, encode_channels

    def before(tick: dict[str, Any]) -> bytes:  # Outputs.write_raw before RawEncoder
        per_device: dict[str, dict[str, Any]] = {}
        for ch, arrays in tick.items():
            dev, _, name = ch.partition(".")
            per_device.setdefault(dev, {})[name] = arrays
        return b"".join(encode_channels(d, TAGS, c, EncodeStats()) for d, c in per_device.items())

    enc = RawEncoder(TAGS)

    def after(tick: dict[str, Any]) -> bytes:
        return enc.encode(tick, EncodeStats())

    ticks = reference_ticks(n_ticks)
    identical = all(before(t) == after(t) for t in ticks)
    times: dict[str, list[float]] = {"before": [], "after": []}
    for r in range(rounds):
        order = [("before", before), ("after", after)]
        for name, fn in order if r % 2 == 0 else order[::-1]:
            c0 = time.process_time()
            for t in ticks:
                fn(t)
            times[name].append((time.process_time() - c0) / n_ticks)
    b, a = statistics.median(times["before"]), statistics.median(times["after"])
    samples = sum(len(x[0]) for t in ticks for x in t.values()) / n_ticks
    return {
        "ticks": n_ticks,
        "channels": len(ticks[0]),
        "samples_per_tick": round(samples, 1),
        "byte_identical": identical,
        "method": f"{rounds} alternating rounds, CPU time (process_time), median",
        "before_us_per_tick": round(b * 1e6, 1),
        "after_us_per_tick": round(a * 1e6, 1),
        "before_core_share_at_20_ticks_s": round(b * 20, 4),
        "after_core_share_at_20_ticks_s": round(a * 20, 4),
        "speedup": round(b / a, 1),
    }


def bench_health_point(n_fields: int = 270, reps: int = 50) -> dict[str, Any]:
    """The 1 Hz `daq` health point (~270 flattened fields in the reference daemon):
    `encode_point` vs the per-field `encode_block` it replaced, same run, same bytes."""
    from chikyu_daq.sinks.influx.lineproto import encode_point

    rng = np.random.default_rng(4)
    health = {f"dev{i // 10}_stat_{i}": float(rng.standard_normal()) for i in range(n_fields)}
    health["dev0_stat_0"] = float("nan")

    def before() -> bytes:
        cols = {k: np.array([v]) for k, v in sorted(health.items())}
        return encode_block("daq", TAGS, np.array([T0], np.int64), cols)

    def after() -> bytes:
        return encode_point("daq", TAGS, T0, dict(sorted(health.items())))

    identical = before() == after()
    best: dict[str, float] = {}
    for name, fn in (("before", before), ("after", after)) * 2:
        c0 = time.process_time()
        for _ in range(reps):
            fn()
        best[name] = min(best.get(name, 1e9), (time.process_time() - c0) / reps)
    return {
        "fields": n_fields,
        "byte_identical": identical,
        "before_ms_per_point": round(best["before"] * 1e3, 3),
        "after_ms_per_point": round(best["after"] * 1e3, 3),
        "speedup": round(best["before"] / best["after"], 1),
    }


def raw_ingest(url: str, db: str, batches: list[bytes]) -> float:
    """influxd's own rate: pre-encoded gzipped batches posted in a plain loop, one keep-alive
    connection; returns seconds."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"}
    t0 = time.perf_counter()
    for body in batches:
        conn.request("POST", f"/write?db={db}&precision=ns", body=body, headers=headers)
        r = conn.getresponse()
        r.read()
        assert r.status == 204, r.status
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


@contextlib.contextmanager
def bench_influxd() -> Iterator[tuple[Any, Path]]:
    """A real influxd with a `bench` database in a temporary folder (also yielded), killed after."""
    from tests.servers import Influxd

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "influxd").mkdir()
        server = Influxd(Path(tmp) / "influxd")
        server.start()
        try:
            server.create_db("bench")
            yield server, Path(tmp)
        finally:
            server.kill()


def bench_drain(n_lines: int = 1_000_000) -> dict[str, Any]:
    if shutil.which("influxd") is None:
        return {"skipped": "influxd not installed"}

    with bench_influxd() as (server, tmp):
        spool = Spool(Path(tmp) / "spool", 2 << 30)
        rng = np.random.default_rng(1)
        block = 50_000
        t_start = time.perf_counter()
        lines: list[bytes] = []
        for k in range(0, n_lines, block):
            t = T0 + np.arange(k, k + block, dtype=np.int64) * 1_000_000
            body = encode_block("ft201", TAGS, t, fields(block, rng))
            spool.append(body)
            lines.extend(body.splitlines(keepends=True))
        spool.sync()
        spool_s = time.perf_counter() - t_start
        spooled_bytes = spool.stats().spool_bytes
        batches = [
            gzip.compress(b"".join(lines[i : i + RAW_BATCH]), 1)
            for i in range(0, len(lines), RAW_BATCH)
        ]
        del lines
        raw_s = []
        server.create_db("raw1")
        raw_s.append(raw_ingest(server.url, "raw1", batches))

        async def drain() -> float:
            up = Uploader(spool, V1Writer(server.url, "bench"))
            task = asyncio.create_task(up.run())
            t0 = time.perf_counter()
            while not spool.empty():
                await asyncio.sleep(0.05)
            elapsed = time.perf_counter() - t0
            await up.aclose()
            await task
            return elapsed

        drain_s = asyncio.run(drain())
        server.create_db("raw2")
        raw_s.append(raw_ingest(server.url, "raw2", batches))
        res = server.query('SELECT count("volume_flow") FROM "ft201"', "bench")
        stored = res["results"][0]["series"][0]["values"][0][1]
    raw_rate = n_lines / statistics.mean(raw_s)
    return {
        "lines": n_lines,
        "spooled_bytes": spooled_bytes,
        "encode_and_spool_s": round(spool_s, 2),
        "drain_s": round(drain_s, 2),
        "drain_lines_per_s": round(n_lines / drain_s),
        "raw_ingest_s_before_after": [round(x, 2) for x in raw_s],
        "raw_ingest_lines_per_s": round(raw_rate),
        "raw_ingest_method": f"plain loop, gzip level 1 {RAW_BATCH}-line batches, one keep-alive"
        " connection, pre-encoded; mean of one pass before and one after the drain",
        "drain_vs_raw_ingest": round(n_lines / drain_s / raw_rate, 3),
        "target_drain_vs_raw_ingest": 0.60,
        "points_in_influxd": stored,
    }


def bench_live_upload(window_s: float = 20.0, tick_s: float = 1 / 6) -> dict[str, Any]:
    if shutil.which("influxd") is None:
        return {"skipped": "influxd not installed"}
    import resource
    import threading

    from chikyu_daq.config.model import load_config
    from chikyu_daq.sinks.fanout import Outputs

    ticks = reference_ticks(int((window_s + 5) / tick_s) + 2, tick_s)
    health = {"dev": {f"d{i}": {"ok": True, "polls": i, "ms": 2.5} for i in range(40)}}

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    async def run(url: str, data: Path, upload: bool) -> dict[str, Any]:
        cfg = load_config(REPO / "config" / "reference.toml")
        influx = cfg.outputs.influx.model_copy(
            update={"enabled": True, "dialect": "v1", "url": url, "db": "bench"}
        )
        recorder = cfg.recorder.model_copy(update={"enabled": False})  # the InfluxDB path only
        outputs = cfg.outputs.model_copy(update={"influx": influx})
        cfg = cfg.model_copy(update={"outputs": outputs, "recorder": recorder})
        out = Outputs(cfg, data_dir=data, influx_enabled=True, mqtt_enabled=False)
        await out.start()
        tasks = out.tasks() if upload else []
        stop = threading.Event()

        def worker() -> None:  # the pipeline's worker thread: raw lines per tick
            k, due = 0, time.monotonic()
            while not stop.is_set():
                out.write_raw(ticks[k % len(ticks)])
                k, due = k + 1, due + tick_s
                time.sleep(max(0.0, due - time.monotonic()))

        async def health_point() -> None:
            while True:
                out.publish_health(time.time_ns(), health)
                await asyncio.sleep(1.0)

        th = threading.Thread(target=worker, daemon=True)
        th.start()
        hp = asyncio.create_task(health_point())
        await asyncio.sleep(5.0)  # warm-up
        sent0, c0, t0 = out.influx.uploader.batches_sent, cpu(), time.monotonic()
        await asyncio.sleep(window_s)
        c1, t1, sent1 = cpu(), time.monotonic(), out.influx.uploader.batches_sent
        stop.set()
        th.join()
        hp.cancel()
        await out.aclose()
        for task in tasks:
            task.cancel()
        st = out.influx.stats()
        return {
            "cpu_share": round((c1 - c0) / (t1 - t0), 4),
            "requests_per_s": round((sent1 - sent0) / (t1 - t0), 2),
            "all_lines_sent": st["lines_sent"] == st["lines_spooled"] if upload else None,
        }

    with bench_influxd() as (server, tmp):
        res = {
            name: asyncio.run(run(server.url, Path(tmp) / name, upload))
            for name, upload in (("uploader_on", True), ("uploader_off", False))
        }
    return {
        **res,
        "upload_cpu_share": round(
            res["uploader_on"]["cpu_share"] - res["uploader_off"]["cpu_share"], 4
        ),
        "window_s": window_s,
        "ticks_per_s": round(1 / tick_s, 1),
        "method": "getrusage(RUSAGE_SELF) over the window after 5 s; stock asyncio loop",
    }


def bench_recorder(n_samples: int = 10_000_000, channels: int = 40) -> dict[str, Any]:
    rng = np.random.default_rng(2)
    per_block = 100  # samples per channel per write_raw call
    names = [f"dev{i // 5}.ch{i % 5}" for i in range(channels)]
    v = rng.standard_normal(per_block)
    q = np.zeros(per_block, np.uint8)
    n_blocks = n_samples // (per_block * channels)
    with tempfile.TemporaryDirectory() as tmp:
        rec = Recorder(Path(tmp), run_id="bench", segment_s=600, flush_s=0.5)
        t_start = time.perf_counter()
        for b in range(n_blocks):
            t = T0 + (b * per_block + np.arange(per_block, dtype=np.int64)) * 10_000_000
            rec.write_raw({n: SampleBlock(t, v, q) for n in names})
        rec.close()
        write_s = time.perf_counter() - t_start
        dropped = rec.stats()["recorder_dropped_samples"]  # refused: the disk writer fell behind
        written = n_blocks * per_block * channels - dropped
        size = sum(p.stat().st_size for p in (Path(tmp) / "bench").rglob("*") if p.is_file())
        t_start = time.perf_counter()
        raw = open_run(Path(tmp) / "bench").raw()
        read_s = time.perf_counter() - t_start
        read = sum(len(x[0]) for x in raw.values())
    return {
        "samples": written,
        "dropped_samples_backpressure": dropped,
        "channels": channels,
        "write_s": round(write_s, 2),
        "write_samples_per_s": round(written / write_s),
        "bytes_on_disk": size,
        "read_s": round(read_s, 2),
        "read_samples_per_s": round(read / read_s),
        "read_samples": read,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--drain-lines", type=int, default=1_000_000)
    ap.add_argument("--recorder-samples", type=int, default=10_000_000)
    args = ap.parse_args()
    result = {
        "host": {"python": platform.python_version(), "machine": platform.machine()},
        "encoder": bench_encoder(),
        "raw_encode": bench_raw_encode(),
        "health_point": bench_health_point(),
        "live_upload": bench_live_upload(),
        "recorder": bench_recorder(args.recorder_samples),
        "drain": bench_drain(args.drain_lines),
    }
    publish(result, args.out, "outputs.json")


if __name__ == "__main__":
    main()
