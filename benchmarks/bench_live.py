"""The live path at reference rates, as JSON: daemon CPU, RSS, sample-to-MQTT latency.

    python benchmarks/bench_live.py --out benchmarks/out [--window-s 30] [--warmup-s 5]
        [--repeat N] [--phases bare_poll,outputs_off,outputs_on] [--profile]
        [--loops asyncio,uvloop]

One emulator rig (`hil serve`, its own process) serves every phase; each phase runs in its own
process and is measured over the same fixed window after the same warm-up (counted from the
daemon's "kernels ready" log line: READY comes before the kernels are warm), from the kernel's
account of that process (`/proc/PID/stat` utime + stime, VmRSS):

1. `bare_poll`: the baseline, a bare pymodbus loop issuing exactly the daemon's compiled reads
   (every Modbus device of the installation, one client per bus, serialised per bus like the
   bus owner) at the configured rates, and nothing else;
2. `outputs_off`: the daemon (`chikyu-daq run --endpoints`), recorder on, InfluxDB and MQTT off;
3. `outputs_on`: the daemon with InfluxDB (a real influxd, v1 `/write`) and MQTT (a real
   mosquitto) on. A paho client subscribed to the yield topic takes, for each 1 Hz message,
   arrival time minus the grid time of the point it carries (`t_ns`): sample-to-MQTT latency.
   `late_samples` comes from the daemon's own health on the status topic.

`--loops` runs every phase on each event loop named (`drivers.eventloop`), in turn within a round:
the phases on the default loop (uvloop where installed) keep their plain names, the others are
`<phase>@<loop>`. The bare poller always runs on the stock asyncio loop as `bare_poll` (the
baseline of `x_bare_poll`), and also as `bare_poll@uvloop` when uvloop is named.

`--profile` runs the daemon under `PROFILED`, an in-process account of its CPU by thread, event-loop
callback and pipeline step (it costs about a tenth more CPU; compare its figures with each other).
On uvloop only the threads and the pipeline steps are accounted: its callbacks and wake-ups are
libuv's (`strace -c -f -p PID` counts `epoll_pwait` on either loop).

CPU on a shared 2-core host is noisy: the figures that travel are the ratios to the bare poller
measured in the same run (`x_bare_poll`). Targets: < 3 % of a core with outputs off, < 5 % on,
RSS < 300 MB, latency p99 < 150 ms with no late samples.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from publish import publish

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.servers import Influxd, Mosquitto  # noqa: E402

CLI = [sys.executable, "-m", "chikyu_daq"]
CONFIG = REPO / "config" / "reference.toml"
TARGETS = {"cpu_off": 0.03, "cpu_on": 0.05, "rss_mb": 300, "p99_ms": 150, "late_samples": 0}
#: `--profile`: the daemon phases run under the CPU account (`PROFILED`).
PROFILE = False

#: The baseline: the daemon's own compiled Modbus reads at the configured rates, bare pymodbus.
BARE_POLL = r"""
import asyncio, json, signal, sys, time
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerType
from chikyu_daq.config.model import load_config
from drivers.eventloop import run
from drivers.regmap import compile_device

count = {"ok": 0, "failed": 0}

async def main(cfg_path, eps_path):
    cfg = load_config(cfg_path)
    eps = json.loads(open(eps_path).read())
    done = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    clients, locks = {}, {}
    for name, bus in cfg.buses.items():
        if bus.transport not in ("modbus_tcp", "modbus_rtu_tcp"):
            continue
        host, port = eps[name].rsplit(":", 1)
        framer = FramerType.SOCKET if bus.transport == "modbus_tcp" else FramerType.RTU
        c = AsyncModbusTcpClient(host, port=int(port), framer=framer, timeout=bus.timeout_s,
                                 retries=bus.retries, reconnect_delay=0.1)
        assert await c.connect(), name
        clients[name], locks[name] = c, asyncio.Lock()

    async def poll(dev_id, dev):
        plan = compile_device(dev_id, dev, cfg.maps[dev.map])
        c, lock = clients[dev.bus], locks[dev.bus]
        fn = {3: c.read_holding_registers, 4: c.read_input_registers}
        period = 1.0 / dev.poll_hz
        nxt = time.monotonic()
        while True:
            for r in plan.requests:
                req = r.request
                async with lock:
                    try:  # a timeout on a loaded host is counted, as the driver would
                        await fn[req.function](req.address, count=req.count, device_id=plan.unit)
                        count["ok"] += 1
                    except Exception:
                        count["failed"] += 1
            nxt += period
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))

    tasks = [asyncio.create_task(poll(d, dev)) for d, dev in cfg.devices.items()
             if dev.bus in clients]
    print("READY", flush=True)
    await done.wait()
    for t in tasks:
        t.cancel()
    print(json.dumps(count), flush=True)

run(main(sys.argv[1], sys.argv[2]), sys.argv[3])
"""


#: `--profile`: the daemon run under an in-process CPU account (this wrapper replaces
#: `python -m chikyu_daq`). SIGUSR1 opens the window, SIGUSR2 closes it and writes the JSON to
#: $CHIKYU_BENCH_PROFILE: per-thread CPU (from /proc), event-loop wakeups, the thread CPU time
#: of every event-loop callback by task or function, and of the worker/recorder steps in `TIMED`
#: (inclusive, so nested entries overlap), each as a share of one core and calls per second, and
#: the cyclic garbage collector's passes by generation (`gc`).
PROFILED = r"""
import asyncio, collections, functools, gc, importlib, json, os, runpy, selectors, signal, sys
import threading, time
OUT = os.environ["CHIKYU_BENCH_PROFILE"]
TIMED = os.environ["CHIKYU_BENCH_PROFILE_TIMED"].split()
TICK = os.sysconf("SC_CLK_TCK")
on = [False]
cpu, calls = collections.Counter(), collections.Counter()
state = {"t0": 0.0, "cpu0": {}, "wakeups": 0}
_select, _run = selectors.EpollSelector.select, asyncio.events.Handle._run
now = time.thread_time

def select(self, timeout=None):
    if on[0]:
        state["wakeups"] += 1
    return _select(self, timeout)

def name(cb):
    task = getattr(cb, "__self__", None)
    if isinstance(task, asyncio.Task):
        return "task " + task.get_coro().__qualname__
    cb = getattr(cb, "func", cb)  # functools.partial
    return "cb " + getattr(cb, "__qualname__", type(cb).__name__)

def run(self):
    if not on[0]:
        return _run(self)
    t = now()
    try:
        return _run(self)
    finally:
        k = name(self._callback)
        cpu[k] += now() - t
        calls[k] += 1

selectors.EpollSelector.select, asyncio.events.Handle._run = select, run

gc_cpu, gc_n, gc_t0 = collections.Counter(), collections.Counter(), {}

def gc_account(phase, info):
    if not on[0]:
        return
    if phase == "start":
        gc_t0[threading.get_ident()] = now()
    elif (t := gc_t0.pop(threading.get_ident(), None)) is not None:
        gc_cpu[info["generation"]] += now() - t
        gc_n[info["generation"]] += 1

gc.callbacks.append(gc_account)

def timed(key, fn):
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        if not on[0]:
            return fn(*a, **kw)
        t = now()
        try:
            return fn(*a, **kw)
        finally:
            cpu[key] += now() - t
            calls[key] += 1
    return wrapper

for spec in TIMED:
    mod, _, attr = spec.partition(":")
    cls, _, meth = attr.rpartition(".")
    owner = importlib.import_module(mod)
    owner = getattr(owner, cls) if cls else owner
    setattr(owner, meth, timed(spec, getattr(owner, meth)))

def thread_cpu():
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            f = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(f[11]) + int(f[12])) / TICK
    return out

def group(name):
    return "asyncio_N" if name.startswith("asyncio_") else name.split("-")[0]

def start(*_):
    state["t0"], state["cpu0"] = time.monotonic(), thread_cpu()
    on[0] = True

def dump(*_):
    on[0] = False
    dt = time.monotonic() - state["t0"]
    cpu1, names = thread_cpu(), {t.native_id: group(t.name) for t in threading.enumerate()}
    per = collections.Counter()
    for tid, c in cpu1.items():
        per[names.get(tid, "other")] += c - state["cpu0"].get(tid, 0.0)
    doc = {"window_s": round(dt, 1),
           "thread_cpu_share": {k: round(v / dt, 4) for k, v in per.most_common()},
           # the stock selector loop's wake-ups; uvloop's (libuv) are not counted: None
           "loop_wakeups_per_s": round(state["wakeups"] / dt, 1) if state["wakeups"] else None,
           "gc": {f"gen{g}": {"cpu_share": round(gc_cpu[g] / dt, 5),
                              "per_s": round(gc_n[g] / dt, 2)} for g in sorted(gc_n)},
           "cpu_share": {k: round(v / dt, 5) for k, v in cpu.most_common(40)},
           "calls_per_s": {k: round(calls[k] / dt, 1) for k, _ in cpu.most_common(40)}}
    open(OUT, "w").write(json.dumps(doc, indent=1))

signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, dump)
sys.argv = ["chikyu_daq", *sys.argv[1:]]
runpy.run_module("chikyu_daq", run_name="__main__", alter_sys=True)
"""
#: What `PROFILED` times besides the event loop's callbacks (module:Class.method).
TIMED = (
    "chikyu_daq.live.pipeline:Pipeline._work",
    "chikyu_daq.live.pipeline:Pipeline._drain",
    "chikyu_daq.live.pipeline:Pipeline._publish",
    "chikyu_daq.live.pipeline:Pipeline.stats",
    "chikyu_daq.sinks.fanout:Outputs.write_raw",
    "chikyu_daq.sinks.fanout:Outputs.write_results",
    "chikyu_daq.sinks.fanout:Outputs.publish_health",
    "chikyu_daq.live.processor:Processor.feed_blocks",
    "chikyu_daq.live.processor:Processor.advance",
    "chikyu_daq.store.writer:Recorder.write_raw",
    "chikyu_daq.store.writer:Recorder._flush_locked",
    "chikyu_daq.store.writer:Recorder.stats",
    "chikyu_daq.store.writer:_write_atomic",
    "chikyu_daq.sinks.influx.lineproto:RawEncoder.encode",
    "chikyu_daq.sinks.influx.spool:Spool.append",
    "chikyu_daq.sinks.influx.spool:Spool.next_range",
    "chikyu_daq.sinks.influx.spool:Spool.commit",
    "chikyu_daq.sinks.influx.spool:Spool.sync_if_due",
    "chikyu_daq.sinks.influx.spool:Spool.stats",
    "chikyu_daq.sinks.fanout:Outputs.publish_row",
    "chikyu_daq.sinks.fanout:Outputs.stats",
    "chikyu_daq.sinks.mqtt:MqttPublisher.set_status",
    "chikyu_daq.live.pipeline:Pipeline._next_tick_s",
    "chikyu_daq.interfaces.facade:Interfaces.on_processed",
    "chikyu_daq.interfaces.facade:Interfaces.stats",
    "drivers.regmap:DevicePlan.decode",
    "drivers.sample:BlockBuilder.add",
    "drivers.sample:BlockBuilder.take",
    "drivers.modbus_transport:_Link.data_received",
)


def proc_cpu_s(pid: int) -> float:
    """utime + stime of one process (not its children), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(
    pid: int,
    others: dict[str, int],
    warmup_s: float,
    window_s: float,
    profile: Path | None = None,
) -> dict[str, Any]:
    """CPU share of one core of `pid` (and of `others`, e.g. the rig) over the window; with
    `profile`, `pid` runs `PROFILED` and its profile of the window is added."""
    time.sleep(warmup_s)
    pids = {"self": pid, **others}
    if profile is not None:
        os.kill(pid, signal.SIGUSR1)
    c0 = {k: proc_cpu_s(p) for k, p in pids.items()}
    w0 = time.monotonic()
    time.sleep(window_s)
    c1 = {k: proc_cpu_s(p) for k, p in pids.items()}
    dt = time.monotonic() - w0
    if profile is not None:
        os.kill(pid, signal.SIGUSR2)
    out: dict[str, Any] = {"cpu_share": round((c1["self"] - c0["self"]) / dt, 4)}
    for k in others:
        out[f"{k}_cpu_share"] = round((c1[k] - c0[k]) / dt, 4)
    out["rss_mb"] = round(rss_mb(pid), 1)
    if profile is not None:
        deadline = time.monotonic() + 10
        while not profile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # written in one call; let it finish
        out["profile"] = json.loads(profile.read_text())
    return out


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def bare_poll(
    eps: Path, rig: int, warmup_s: float, window_s: float, loop: str = "asyncio"
) -> dict[str, Any]:
    p = subprocess.Popen(
        [sys.executable, "-c", BARE_POLL, str(CONFIG), str(eps), loop],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "READY"
        res = measure(p.pid, {"rig": rig}, warmup_s, window_s)
        alive = p.poll() is None
    finally:
        stop(p)
    assert p.stdout is not None
    tail = p.stdout.read().strip().splitlines()
    counts = json.loads(tail[-1]) if alive and tail else {}
    return {**res, "alive_at_end": alive, "reads": counts}


def daemon_config(
    tmp: Path, influx: Influxd | None, mqtt: Mosquitto | None, lateness_s: float | None
) -> Path:
    ref = CONFIG.read_text()
    cfg = ref[: ref.index("[outputs.influx]")]
    if lateness_s is not None:  # exploring: the reference file's processing.lateness_s replaced
        cfg = re.sub(r"(?m)^lateness_s = .*$", f"lateness_s = {lateness_s}", cfg)
    if influx is not None:
        cfg += (
            f'[outputs.influx]\nenabled = true\ndialect = "v1"\nurl = "{influx.url}"\n'
            'db = "bench"\n'
        )
    if mqtt is not None:
        cfg += (
            f'[outputs.mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {mqtt.port}\n'
            'client_id = "bench"\n'
        )
    path = tmp / ("daq_on.toml" if influx or mqtt else "daq_off.toml")
    path.write_text(cfg)
    return path


def start_daemon(
    tmp: Path, cfg: Path, eps: Path, name: str, loop: str | None = None
) -> tuple[subprocess.Popen[Any], float]:
    """`chikyu-daq run` (on event loop `loop`, default the daemon's), returning once it has said
    READY=1 (sd_notify), and its start time."""
    sock_path = tmp / f"notify-{name}"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(sock_path))
    notify.settimeout(120)
    t0 = time.monotonic()
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "PYTHONPATH": str(REPO)}
    cli = CLI
    if PROFILE:
        cli = [sys.executable, "-c", PROFILED]
        env.update(
            CHIKYU_BENCH_PROFILE=str(tmp / f"profile-{name}.json"),
            CHIKYU_BENCH_PROFILE_TIMED=" ".join(TIMED),
        )
    args = ["run", "-c", str(cfg), "--data-dir", str(tmp / name), "--endpoints", str(eps)]
    p = subprocess.Popen(
        [*cli, *args, *(["--loop", loop] if loop else [])],
        cwd=REPO,
        env=env,
        stdout=(tmp / f"{name}.log").open("wb"),  # the daemon logs to stdout
        stderr=subprocess.STDOUT,
    )
    try:
        while b"READY=1" not in notify.recv(4096):
            pass
    finally:
        notify.close()
    return p, time.monotonic() - t0


def wait_kernels(log: Path, timeout_s: float = 300.0) -> float:
    """Seconds the daemon's kernels took ("kernels ready in X s" in its log): the daemon says
    READY while they warm in the background, and the phase measures the steady state after."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = re.search(r"kernels ready in ([0-9.]+) s", log.read_text(errors="replace"))
        if m:
            return float(m.group(1))
        time.sleep(0.1)
    raise RuntimeError(f"kernels not ready within {timeout_s:.0f} s ({log})")


def daemon_phase(
    tmp: Path,
    eps: Path,
    rig: int,
    warmup_s: float,
    window_s: float,
    outputs: bool,
    lateness_s: float | None = None,
    loop: str | None = None,
) -> dict[str, Any]:
    influx = mqtt = None
    servers: list[Any] = []
    if outputs:
        (tmp / "influxd").mkdir()
        (tmp / "mosquitto").mkdir()
        influx, mqtt = Influxd(tmp / "influxd"), Mosquitto(tmp / "mosquitto")
        for s in (influx, mqtt):
            s.start()
            servers.append(s)
        influx.create_db("bench")
    name = "on" if outputs else "off"
    try:
        cfg = daemon_config(tmp, influx, mqtt, lateness_s)
        daq, ready_s = start_daemon(tmp, cfg, eps, name, loop)
        try:
            start = {
                "startup_to_ready_s": round(ready_s, 2),
                "kernels_ready_s": wait_kernels(tmp / f"{name}.log"),
            }
            prof = tmp / f"profile-{name}.json" if PROFILE else None
            if mqtt is None:
                return {**start, **measure(daq.pid, {"rig": rig}, warmup_s, window_s, prof)}
            return {**start, **with_mqtt(daq, rig, mqtt, warmup_s, window_s, prof)}
        finally:
            stop(daq)
    finally:
        for s in servers:
            s.kill()


def with_mqtt(
    daq: subprocess.Popen[Any],
    rig: int,
    mqtt: Mosquitto,
    warmup_s: float,
    window_s: float,
    profile: Path | None = None,
) -> dict[str, Any]:
    import paho.mqtt.client as paho

    lat: list[float] = []
    health: dict[str, Any] = {}
    window = {"open": False}

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        now = time.time()
        doc = json.loads(msg.payload)
        if msg.topic.endswith("/status"):
            health.update(doc.get("health") or {})
        elif window["open"]:
            lat.append(now - doc["t_ns"] / 1e9)

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-sub")
    client.on_message = on_message
    client.connect("127.0.0.1", mqtt.port)
    client.subscribe("chikyu/chikyu/yield", qos=0)
    client.subscribe("chikyu/chikyu/status", qos=0)
    client.loop_start()
    try:
        time.sleep(warmup_s)
        late0 = health.get("late_samples", 0)
        window["open"] = True
        res = measure(daq.pid, {"rig": rig}, 0.0, window_s, profile)
        window["open"] = False
        time.sleep(1.5)  # one more status with the health at the end of the window
    finally:
        client.loop_stop()
        client.disconnect()
    arr = np.array(lat) * 1000
    res.update(
        {
            "mqtt_messages": int(arr.size),
            "latency_ms_p50": round(float(np.percentile(arr, 50)), 1) if arr.size else None,
            "latency_ms_p99": round(float(np.percentile(arr, 99)), 1) if arr.size else None,
            "latency_ms_max": round(float(arr.max()), 1) if arr.size else None,
            "late_samples_total": health.get("late_samples"),
            "late_samples_in_window": (health.get("late_samples", 0) or 0) - (late0 or 0),
        }
    )
    return res


def warm_kernels() -> float:
    """Fill the kernel cache first (own process), so every phase starts warm (bench_compile
    measures the cold compile); returns the seconds it took."""
    code = (
        "import sys; from chikyu_daq.config.model import load_config; "
        "from chikyu_daq.live.processor import warm_up; print(warm_up(load_config(sys.argv[1])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(CONFIG)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
        capture_output=True,
        text=True,
    )
    return round(float(out.stdout.split()[-1]), 2)


def loop_name(name: str | None) -> str:
    """The loop `name` resolves to here ('auto' and None: the daemon's default)."""
    from drivers.eventloop import loop_factory

    return "uvloop" if "uvloop" in loop_factory(name).__module__ else "asyncio"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument("--window-s", type=float, default=30.0)
    ap.add_argument("--warmup-s", type=float, default=5.0)
    ap.add_argument("--lateness-s", type=float, default=None, help="override, to explore")
    ap.add_argument("--phases", default="bare_poll,outputs_off,outputs_on")
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of every phase, in turn; each phase reports its median round by CPU and "
        "lists every round's figures under `<phase>_rounds`",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="account the daemon's CPU by thread, task and step (adds `profile`; costs CPU)",
    )
    ap.add_argument(
        "--loops",
        default="auto",
        help="event loops to run the daemon phases on, in turn (auto, uvloop, asyncio); "
        "naming uvloop also runs the bare poller on it",
    )
    args = ap.parse_args()
    global PROFILE
    PROFILE = args.profile
    phases = args.phases.split(",")
    default = loop_name(None)
    loops = list(dict.fromkeys(loop_name(x) for x in args.loops.split(",")))
    result: dict[str, Any] = {"benchmark": "live", "cores": os.cpu_count(), "targets": TARGETS}
    result["loop_default"], result["loops"] = default, loops
    result["host_loadavg_before"] = [round(x, 2) for x in os.getloadavg()]  # noise on the host
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        eps = tmp / "eps.json"
        rig = subprocess.Popen(
            [*CLI, "hil", "serve", "-c", str(CONFIG), "--endpoints-out", str(eps)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 60
            while not eps.exists():
                if rig.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("hil serve did not come up")
                time.sleep(0.1)
            w, s = args.warmup_s, args.window_s
            result["kernel_warm_up_s"] = warm_kernels()
            late = args.lateness_s
            runs: dict[str, list[dict[str, Any]]] = {}
            for r in range(args.repeat):
                if "bare_poll" in phases:
                    for lp in ("asyncio", *(["uvloop"] if "uvloop" in loops else [])):
                        key = "bare_poll" if lp == "asyncio" else f"bare_poll@{lp}"
                        runs.setdefault(key, []).append(bare_poll(eps, rig.pid, w, s, lp))
                for ph, outputs in (("outputs_off", False), ("outputs_on", True)):
                    for lp in loops if ph in phases else ():
                        key = ph if lp == default else f"{ph}@{lp}"
                        sub = tmp / f"{key}-{r}"
                        sub.mkdir()
                        runs.setdefault(key, []).append(
                            daemon_phase(sub, eps, rig.pid, w, s, outputs, late, lp)
                        )
            for ph, rounds in runs.items():
                # the median round (of an even number, the costlier of the middle two)
                result[ph] = sorted(rounds, key=lambda x: x["cpu_share"])[len(rounds) // 2]
                if len(rounds) > 1:
                    keys = ("cpu_share", "rss_mb", "latency_ms_p99", "late_samples_in_window")
                    result[f"{ph}_rounds"] = [{k: x[k] for k in keys if k in x} for x in rounds]
        finally:
            stop(rig)
    result["host_loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    result["lateness_s"] = late if late is not None else "reference.toml"
    base = result.get("bare_poll", {}).get("cpu_share", 0.0)
    for key in runs:
        if key.startswith("outputs_") and "@" in key:
            x = result[key]
            x["x_bare_poll"] = round(x["cpu_share"] / base, 2) if base > 0 else None
    within: dict[str, bool] = {}
    if "outputs_off" in result:
        off = result["outputs_off"]
        off["x_bare_poll"] = round(off["cpu_share"] / base, 2) if base > 0 else None
        within["cpu_off"] = off["cpu_share"] < TARGETS["cpu_off"]
        within["rss_off"] = off["rss_mb"] < TARGETS["rss_mb"]
    if "outputs_on" in result:
        on = result["outputs_on"]
        on["x_bare_poll"] = round(on["cpu_share"] / base, 2) if base > 0 else None
        within["cpu_on"] = on["cpu_share"] < TARGETS["cpu_on"]
        within["rss_on"] = on["rss_mb"] < TARGETS["rss_mb"]
        p99 = on["latency_ms_p99"]
        within["p99"] = p99 is not None and p99 < TARGETS["p99_ms"]
        within["late"] = on["late_samples_in_window"] == 0
    result["within_target"] = within
    publish(result, args.out, "live.json")


if __name__ == "__main__":
    main()
