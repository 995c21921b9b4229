"""Outputs benchmark: encoder vs influxdb-client's Point API, spool drain into a real influxd,
recorder write and read throughput. Prints JSON (and writes it to --out).

    .venv/bin/python benchmarks/bench_outputs.py --out benchmarks/results/outputs.json

Needs Debian's `influxdb` (influxd) for the drain; without it that part reports `skipped`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from chikyu_daq.influx import Uploader, V1Writer  # noqa: E402
from chikyu_daq.lineproto import encode_block  # noqa: E402
from chikyu_daq.recorder import Recorder  # noqa: E402
from chikyu_daq.recording import open_run  # noqa: E402
from chikyu_daq.spool import Spool  # noqa: E402

T0 = 1_700_000_000_000_000_000
TAGS = {"vessel": "chikyu", "run": "bench"}


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


def bench_drain(n_lines: int = 1_000_000) -> dict[str, Any]:
    if shutil.which("influxd") is None:
        return {"skipped": "influxd not installed"}
    from tests.servers import Influxd

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "influxd").mkdir()
        server = Influxd(Path(tmp) / "influxd")
        server.start()
        try:
            server.create_db("bench")
            spool = Spool(Path(tmp) / "spool", 2 << 30)
            rng = np.random.default_rng(1)
            block = 50_000
            t_start = time.perf_counter()
            for k in range(0, n_lines, block):
                t = T0 + np.arange(k, k + block, dtype=np.int64) * 1_000_000
                spool.append(encode_block("ft201", TAGS, t, fields(block, rng)))
            spool.sync()
            spool_s = time.perf_counter() - t_start
            spooled_bytes = spool.stats().spool_bytes

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
            res = server.query('SELECT count("volume_flow") FROM "ft201"', "bench")
            stored = res["results"][0]["series"][0]["values"][0][1]
        finally:
            server.kill()
    return {
        "lines": n_lines,
        "spooled_bytes": spooled_bytes,
        "encode_and_spool_s": round(spool_s, 2),
        "drain_s": round(drain_s, 2),
        "drain_lines_per_s": round(n_lines / drain_s),
        "target_s": 30,
        "points_in_influxd": stored,
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
            rec.write_raw({n: (t, v, q) for n in names})
        rec.close()
        write_s = time.perf_counter() - t_start
        written = n_blocks * per_block * channels
        size = sum(p.stat().st_size for p in (Path(tmp) / "bench").rglob("*") if p.is_file())
        t_start = time.perf_counter()
        raw = open_run(Path(tmp) / "bench").raw()
        read_s = time.perf_counter() - t_start
        read = sum(len(x[0]) for x in raw.values())
    return {
        "samples": written,
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
        "recorder": bench_recorder(args.recorder_samples),
        "drain": bench_drain(args.drain_lines),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
