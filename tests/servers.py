"""Real InfluxDB 1.x, VictoriaMetrics and Mosquitto processes for tests, the emulated rig
(`hil serve`) as a process, and the deadline polls the tests wait with.

Each server runs on a free loopback port with its own temporary data directory, can be stopped
and started again on the same port (outage tests), and is killed at teardown. Outside CI a
missing binary skips the test with the Debian package to install; with `CI=true` it fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

_HANDED_OUT: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range, never handed out twice.

    A port from `bind(0)` is an ephemeral one: between the pick and the server's own bind the
    kernel may give it to any outgoing connection (CI once lost influxd's HTTP port that way).
    Ports below the range are never chosen for outgoing connections.
    """
    low = _ephemeral_low()
    rng = random.Random()
    for _ in range(200) if low > 12000 else ():
        port = rng.randrange(10000, low)
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:  # odd port range: the kernel's
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout_s
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the server may not be up yet
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_exc!r})" if last_exc else ""
            pytest.fail(f"condition not met within {timeout_s} s{detail}")
        time.sleep(interval_s)


async def until(predicate: Callable[[], Any], timeout_s: float, interval_s: float = 0.02) -> None:
    """`wait_until` on the event loop: poll without blocking the tasks under test."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(interval_s)


def http_answers(url: str, status: int, context: ssl.SSLContext | None = None) -> bool:
    """Whether a GET of `url` answers `status` within half a second (a readiness probe)."""
    try:
        with urllib.request.urlopen(url, timeout=0.5, context=context) as r:
            return bool(r.status == status)
    except (OSError, urllib.error.URLError):
        return False


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path:
        return path
    msg = f"{name} not found: install the Debian package {package!r} (apt-get install {package})"
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


REPO = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "chikyu_daq"]


def run_cli(*args: str, timeout: float = 120) -> tuple[int, str]:
    """One `chikyu-daq` command from the repository root: (exit code, stdout + stderr)."""
    out = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return out.returncode, out.stdout + out.stderr


@contextlib.contextmanager
def hil_serve(config: Path, endpoints: Path) -> Iterator[Path]:
    """`hil serve` as a process: the emulated rig on loopback; yields its endpoints file."""
    proc = subprocess.Popen(
        [*CLI, "hil", "serve", "-c", str(config), "--endpoints-out", str(endpoints)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )
    try:
        wait_until(endpoints.exists, 30)
        yield endpoints
    finally:
        proc.terminate()
        proc.wait(10)


class ServerProcess:
    """A child process bound to fixed ports that can be stopped and restarted."""

    name = "server"
    #: the config file the server reads, written into its workdir
    conf_name = "server.conf"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"

    @property
    def conf(self) -> Path:
        return self.workdir / self.conf_name

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return _tcp_open(self.port)

    def start(self, timeout_s: float = 20.0) -> None:
        assert self.proc is None, f"{self.name} already running"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer within {timeout_s} s")
            time.sleep(0.05)

    def _end(self, sig: int) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def stop(self) -> None:
        """Graceful stop (SIGTERM); data dir and port are kept for `start()`."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        self._end(signal.SIGKILL)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


S = TypeVar("S", bound=ServerProcess)


def serving(server: S) -> Iterator[S]:
    """Body of a fixture: the server started, killed at teardown (`yield from serving(s)`)."""
    server.start()
    try:
        yield server
    finally:
        server.kill()


class Influxd(ServerProcess):
    """InfluxDB 1.x (Debian ships 1.6.7: the v1 `/write` and `/query` API only)."""

    name = "influxd"
    conf_name = "influxdb.conf"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.rpc_port = free_port()
        conf = f"""
reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{workdir}/meta"
[data]
  dir = "{workdir}/data"
  wal-dir = "{workdir}/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
"""
        self.conf.write_text(conf)

    def command(self) -> list[str]:
        return [require_binary("influxd", "influxdb"), "-config", str(self.conf)]

    def ready(self) -> bool:
        return http_answers(f"{self.url}/ping", 204)

    def query(self, q: str, db: str = "") -> dict[str, Any]:
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        url = f"{self.url}/query?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as r:
            return dict(json.loads(r.read()))

    def create_db(self, name: str) -> None:
        data = urllib.parse.urlencode({"q": f'CREATE DATABASE "{name}"'}).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10) as r:
            assert r.status == 200


class Victoria(ServerProcess):
    """VictoriaMetrics: accepts `/write` and `/api/v2/write`; read back with `/api/v1/export`."""

    name = "victoria-metrics"

    def command(self) -> list[str]:
        return [
            require_binary("victoria-metrics", "victoria-metrics"),
            f"-storageDataPath={self.workdir / 'vmdata'}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=WARN",
        ]

    def ready(self) -> bool:
        return http_answers(f"{self.url}/health", 200)

    def export(self, match: str = '{__name__!=""}') -> list[dict[str, Any]]:
        """Every stored series matching `match`, one dict per series (values and timestamps)."""
        with urllib.request.urlopen(f"{self.url}/internal/force_flush", timeout=10):
            pass
        params = urllib.parse.urlencode({"match[]": match, "start": "0"})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{params}", timeout=30) as r:
            body = r.read().decode()
        return [json.loads(line) for line in body.splitlines() if line.strip()]


class Mosquitto(ServerProcess):
    name = "mosquitto"
    conf_name = "mosquitto.conf"
    host = "127.0.0.1"

    def __init__(self, workdir: Path, extra_conf: str = "") -> None:
        super().__init__(workdir)
        conf = (
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"log_dest stdout\n{extra_conf}"
        )
        self.conf.write_text(conf)

    def command(self) -> list[str]:
        return [require_binary("mosquitto", "mosquitto"), "-c", str(self.conf)]

    def tool(self, name: str, *args: str) -> list[str]:
        """The command line of `mosquitto_sub`/`mosquitto_pub` for this broker, `args` after."""
        exe = require_binary(name, "mosquitto-clients")
        return [exe, "-h", self.host, "-p", str(self.port), *args]

    def sub_command(self, topic: str, count: int, wait_s: float) -> list[str]:
        """`mosquitto_sub` for `count` messages on `topic`, giving up after `wait_s` seconds."""
        return self.tool("mosquitto_sub", "-t", topic, "-C", str(count), "-W", f"{wait_s:g}")
