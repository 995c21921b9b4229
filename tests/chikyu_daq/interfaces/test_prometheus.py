"""`/metrics` scraped by a real Prometheus (Debian package) from the live pipeline."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.iface_servers import PrometheusServer, live_pipeline, reference
from tests.servers import free_port

pytestmark = [pytest.mark.servers, pytest.mark.slow]


async def _poll(predicate, timeout_s: float):  # type: ignore[no-untyped-def]
    """Like `tests.servers.wait_until`, without blocking the event loop the pipeline runs on."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = await asyncio.to_thread(predicate)
            if value:
                return value
        except Exception as exc:
            last = exc
        await asyncio.sleep(0.2)
    pytest.fail(f"condition not met within {timeout_s} s (last error: {last!r})")


def test_prometheus_scrapes_daemon_health(tmp_path: Path) -> None:
    port = free_port()
    cfg = reference(**{"outputs.prometheus": {"enabled": True, "host": "127.0.0.1", "port": port}})
    (tmp_path / "prom").mkdir()
    prom = PrometheusServer(tmp_path / "prom", f"127.0.0.1:{port}")

    async def main() -> None:
        async with live_pipeline(cfg, tmp_path / "data") as live:
            await asyncio.to_thread(prom.start)
            try:
                up = await _poll(lambda: prom.query('up{job="chikyu"} == 1'), 30)
                assert up[0]["metric"]["instance"] == f"127.0.0.1:{port}"
                polls = await _poll(
                    lambda: prom.query("chikyu_device_polls_ok_total > 0") or None, 20
                )
                # every configured device, labelled, with a count the daemon really reached
                by_dev = {r["metric"]["device"]: float(r["value"][1]) for r in polls}
                assert set(by_dev) == set(cfg.devices)
                now = live.pipeline.stats()["devices"]
                for dev, v in by_dev.items():
                    assert 0 < v <= now[dev]["polls_ok"], dev
                ups = prom.query("chikyu_device_up")
                assert {r["metric"]["device"] for r in ups} == set(cfg.devices)
                for name in (
                    "chikyu_hub_depth",
                    "chikyu_processing_lag_seconds",
                    "chikyu_recorder_samples_total",
                    "chikyu_bus_connected",
                    "chikyu_clock_maxerror_seconds",
                    "chikyu_alarms_per_10min",
                ):
                    got = await _poll(lambda n=name: prom.query(n), 10)
                    assert all(r["metric"]["vessel"] == "chikyu" for r in got), name
            finally:
                await asyncio.to_thread(prom.kill)
        # the exporter's port is released at shutdown (a SIGHUP reload binds it again)
        import socket

        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the exporter binds
            s.bind(("127.0.0.1", port))

    asyncio.run(main())
