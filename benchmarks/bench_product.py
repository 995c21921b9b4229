"""The product's quality bars, measured (never asserted): JSON out.

- replay: a synthetic 24 h reference-rate recording (`hil synth`), replayed end to end (read,
  process, write results) as a multiple of real time (target >= 10,000x);
- live: the daemon (`chikyu-daq run`, its own process) against the emulators (`hil serve`,
  another process) at reference rates: start-up to READY with a warm cache (target < 3 s),
  CPU share of one core and RSS (targets < 10 %, < 300 MB), and sample-to-MQTT latency of the
  1 Hz yield messages through a real mosquitto (p99 target < 250 ms): receive time minus the
  grid time of the newest samples the message summarises.

    python benchmarks/bench_product.py --out benchmarks/out [--hours 24] [--live-s 60]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "chikyu_daq"]


def bench_replay(tmp: Path, hours: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    out = subprocess.run(
        [*CLI, "hil", "synth", "--scenario", "nominal", "--hours", str(hours), "--out", str(tmp)],
        check=True,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    synth_s = time.perf_counter() - t0
    info = json.loads(out.stdout)
    from chikyu_daq.replay import ReplayOptions, replay

    t1 = time.perf_counter()
    summary = replay(Path(info["run"]), ReplayOptions(out_dir=tmp / "replay", report=False))
    wall = time.perf_counter() - t1
    return {
        "hours": hours,
        "raw_samples": info["samples"],
        "synth_wall_s": round(synth_s, 2),
        "replay_wall_s": round(wall, 2),
        "replay_x_realtime": round(hours * 3600 / wall, 0),
        "replay_grid_points": summary["grid_points"],
        "rey_error_pct_vs_truth": summary.get("rey_error_pct"),
        "truth_in_95": summary.get("truth_in_95"),
        "target_x_realtime": 10_000,
    }


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_live(tmp: Path, seconds: float) -> dict[str, Any]:
    mosq = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    (tmp / "mosq.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    broker = subprocess.Popen([mosq, "-c", str(tmp / "mosq.conf")], stderr=subprocess.DEVNULL)
    eps = tmp / "eps.json"
    rig = subprocess.Popen(
        [*CLI, "hil", "serve", "-c", "config/reference.toml", "--endpoints-out", str(eps)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    ref = (REPO / "config" / "reference.toml").read_text()
    cfg = ref[: ref.index("[outputs.influx]")] + (
        f'[outputs.mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\nclient_id = "bench"\n'
    )
    (tmp / "daq.toml").write_text(cfg)
    notify_path = tmp / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(60)
    try:
        for _ in range(300):
            if eps.exists():
                break
            time.sleep(0.1)
        env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
        t_spawn = time.monotonic()
        daq = subprocess.Popen(
            [
                *CLI,
                "run",
                "-c",
                str(tmp / "daq.toml"),
                "--data-dir",
                str(tmp / "data"),
                "--endpoints",
                str(eps),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while b"READY=1" not in notify.recv(4096):
            pass
        ready_s = time.monotonic() - t_spawn
        import paho.mqtt.client as mqtt

        lat: list[float] = []
        health: dict[str, Any] = {}

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            doc = json.loads(msg.payload)
            if msg.topic.endswith("/status"):
                health.update(doc.get("health") or {})
            else:
                lat.append(time.time() - doc["t_ns"] / 1e9)

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-sub")
        client.on_message = on_message
        client.connect("127.0.0.1", port)
        client.subscribe("chikyu/chikyu/yield", qos=1)
        client.subscribe("chikyu/chikyu/status", qos=1)
        client.loop_start()
        time.sleep(3.0)  # settle: first messages carry start-up effects
        lat.clear()
        cpu0, w0 = _proc_cpu_s(daq.pid), time.monotonic()
        time.sleep(seconds)
        cpu1, w1 = _proc_cpu_s(daq.pid), time.monotonic()
        rss = _rss_mb(daq.pid)
        client.loop_stop()
        daq.terminate()
        daq.wait(30)
        arr = np.array(lat) * 1000
        return {
            "seconds": seconds,
            "startup_to_ready_s": round(ready_s, 2),
            "cpu_share_one_core": round((cpu1 - cpu0) / (w1 - w0), 4),
            "rss_mb": round(rss, 1),
            "mqtt_messages": int(arr.size),
            "late_samples": health.get("late_samples"),
            "grid_points": health.get("grid_points"),
            "latency_ms_p50": round(float(np.percentile(arr, 50)), 1) if arr.size else None,
            "latency_ms_p99": round(float(np.percentile(arr, 99)), 1) if arr.size else None,
            "targets": {"startup_s": 3, "cpu_share": 0.10, "rss_mb": 300, "p99_ms": 250},
        }
    finally:
        rig.terminate()
        broker.terminate()
        rig.wait(10)
        broker.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--live-s", type=float, default=60.0)
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--skip-replay", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"benchmark": "product", "cores": os.cpu_count()}
    if not args.skip_replay:
        with tempfile.TemporaryDirectory() as d:
            result["replay"] = bench_replay(Path(d) / "synth", args.hours)
    if not args.skip_live:
        with tempfile.TemporaryDirectory() as d:
            result["live"] = bench_live(Path(d), args.live_s)
    text = json.dumps(result, indent=2)
    (args.out / "product.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
