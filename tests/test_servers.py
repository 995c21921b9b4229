"""Smoke tests: each server fixture really stores what is written and serves it back."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest

from tests.servers import Influxd, Mosquitto, Victoria, require_binary, wait_until

pytestmark = pytest.mark.servers


def _post(url: str, body: bytes) -> int:
    req = urllib.request.Request(url, data=body, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        return int(r.status)


def test_influxd_write_query_and_restart(influxd: Influxd) -> None:
    influxd.create_db("smoke")
    t = time.time_ns()
    assert (
        _post(f"{influxd.url}/write?db=smoke&precision=ns", f"m,vessel=x v=1.5 {t}".encode()) == 204
    )
    influxd.stop()
    influxd.start()
    res = influxd.query("SELECT v FROM m", db="smoke")
    assert res["results"][0]["series"][0]["values"] == [[t, 1.5]]


def test_victoria_accepts_v2_write(victoria: Victoria) -> None:
    t_ms = int(time.time() * 1000)
    body = f"m,vessel=x v=2.25 {t_ms}".encode()
    assert _post(f"{victoria.url}/api/v2/write?bucket=b&org=o&precision=ms", body) == 204
    series = wait_until(lambda: victoria.export('{__name__="m_v"}'), 10)
    assert series[0]["values"] == [2.25]
    assert series[0]["timestamps"] == [t_ms]
    assert series[0]["metric"]["vessel"] == "x"


def test_mosquitto_retained_message(mosquitto: Mosquitto) -> None:
    pub = require_binary("mosquitto_pub", "mosquitto-clients")
    sub = require_binary("mosquitto_sub", "mosquitto-clients")
    port = str(mosquitto.port)
    subprocess.run(
        [
            pub,
            "-h",
            "127.0.0.1",
            "-p",
            port,
            "-t",
            "smoke/status",
            "-r",
            "-q",
            "1",
            "-m",
            '{"ok": 1}',
        ],
        check=True,
        timeout=10,
    )
    out = subprocess.run(
        [sub, "-h", "127.0.0.1", "-p", port, "-t", "smoke/status", "-C", "1", "-W", "5"],
        check=True,
        capture_output=True,
        timeout=10,
    )
    assert json.loads(out.stdout) == {"ok": 1}
