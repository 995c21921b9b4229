"""Prometheus `/metrics`: the daemon's own health, read from `Pipeline.stats()` at scrape time.

    exporter = PrometheusExporter(cfg.outputs.prometheus, stats, vessel="chikyu")
    exporter.start(asyncio.get_running_loop())   # HTTP server thread on host:port
    exporter.close()

Nothing is copied into prometheus-client metric objects ahead of time: a custom collector asks
the event loop for a fresh `stats()` on each scrape (the stats dicts belong to the loop thread,
so the HTTP thread never walks them itself). Which stats key becomes which metric is the tables
below; a key the stats do not have (a sink that is off) is simply not exported.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from chikyu_daq.config.model import Prometheus

log = logging.getLogger(__name__)

NS = "chikyu"
SCRAPE_TIMEOUT_S = 2.0

#: (stats key, metric name suffix, "counter" or "gauge", help text)
Row = tuple[str, str, str, str]

#: (stats key, metric name, kind, help): one metric per device, label `device`.
DEVICE_METRICS: tuple[Row, ...] = (
    ("polls_ok", "device_polls_ok", "counter", "Successful polls"),
    ("polls_failed", "device_polls_failed", "counter", "Failed polls (timeout, exception, bad)"),
    ("timeouts", "device_timeouts", "counter", "Polls that timed out"),
    ("missed_deadlines", "device_missed_deadlines", "counter", "Polls started late"),
    ("bad_frames", "device_bad_frames", "counter", "Garbled frames dropped"),
    ("latency_mean_ms", "device_latency_mean_ms", "gauge", "Mean poll latency (ms)"),
    ("latency_last_ms", "device_latency_last_ms", "gauge", "Last poll latency (ms)"),
    ("latency_max_ms", "device_latency_max_ms", "gauge", "Largest poll latency (ms)"),
)
#: Per bus, label `bus`.
BUS_METRICS: tuple[Row, ...] = (
    ("connected", "bus_connected", "gauge", "1 while the bus link is up"),
    ("connects", "bus_connects", "counter", "Link (re)connections"),
    ("link_errors", "bus_link_errors", "counter", "Link errors"),
)
#: Pipeline-level keys of `stats()`.
PIPELINE_METRICS: tuple[Row, ...] = (
    ("hub_depth", "hub_depth", "gauge", "Batches waiting in the hub queue"),
    ("backpressure_waits", "backpressure_waits", "counter", "Driver waits on a full hub"),
    ("late_samples", "late_samples", "counter", "Samples that arrived after their grid point"),
    ("grid_points", "grid_points", "counter", "Grid points computed"),
    ("clock_rebases", "clock_rebases", "counter", "Backwards clock steps the processor re-based"),
    ("processing_lag_s", "processing_lag_seconds", "gauge", "Wall clock minus newest result"),
    ("worker_busy_s", "worker_busy_seconds", "counter", "Time the worker thread was busy"),
)
#: Keys of `stats()["outputs"]` (flattened: influx, mqtt and recorder stats).
OUTPUT_METRICS: tuple[Row, ...] = (
    ("spool_bytes", "spool_bytes", "gauge", "InfluxDB spool size on disk"),
    ("spool_pending_bytes", "spool_pending_bytes", "gauge", "Spooled bytes not yet uploaded"),
    ("spool_lag_s", "spool_lag_seconds", "gauge", "Age of the oldest line not yet uploaded"),
    ("lines_sent", "influx_lines_sent", "counter", "Lines InfluxDB accepted"),
    ("lines_dropped", "spool_lines_dropped", "counter", "Lines dropped by the spool quota"),
    ("lines_rejected", "influx_lines_rejected", "counter", "Lines InfluxDB rejected"),
    ("influx_connected", "influx_connected", "gauge", "1 while InfluxDB answers"),
    ("mqtt_connected", "mqtt_connected", "gauge", "1 while the MQTT broker is connected"),
    ("mqtt_events_pending", "mqtt_events_pending", "gauge", "Alarm events waiting for the broker"),
    ("mqtt_published", "mqtt_published", "counter", "MQTT messages published"),
    ("recorder_samples", "recorder_samples", "counter", "Raw samples recorded"),
    ("recorder_flush_errors", "recorder_flush_errors", "counter", "Recorder flush errors"),
)
#: Keys of `stats()["alarms"]` (EEMUA 191 KPIs from `chikyu_daq.alarms.kpi`).
ALARM_KPI_METRICS: tuple[Row, ...] = (
    ("alarms_per_10min", "alarms_per_10min", "gauge", "Mean annunciated alarms per 10 min"),
    ("peak_per_10min", "alarms_peak_per_10min", "gauge", "Most alarms in one 10-min period"),
    ("current_10min", "alarms_current_10min", "gauge", "Alarms in the current 10-min period"),
    ("flood_periods", "alarm_flood_periods", "gauge", "10-min periods with >= 10 alarms"),
    ("annunciated", "alarms_annunciated", "counter", "Annunciated alarms"),
    ("n_active", "alarms_active", "gauge", "Alarms active now"),
    ("n_unacked", "alarms_unacked", "gauge", "Alarms waiting for acknowledgement"),
    ("n_shelved", "alarms_shelved", "gauge", "Alarms shelved now"),
    ("n_stale", "alarms_stale", "gauge", "Alarms active for more than 24 h"),
    ("n_chattering", "alarms_chattering", "gauge", "Alarms with >= 3 raises in 1 min"),
)

#: Keys of `stats()["clock"]` (`chikyu_daq.interfaces.clock`).
CLOCK_METRICS: tuple[Row, ...] = (
    ("synced", "clock_synced", "gauge", "1 while the host clock is disciplined (NTP/chrony)"),
    ("offset_s", "clock_offset_seconds", "gauge", "Estimated offset from the time source"),
    ("maxerror_s", "clock_maxerror_seconds", "gauge", "Kernel's maximum error bound"),
    ("steps", "clock_steps", "counter", "Wall-clock steps seen by the daemon"),
)


def _family(
    name: str, kind: str, doc: str, labels: list[str]
) -> CounterMetricFamily | GaugeMetricFamily:
    if kind == "counter":
        return CounterMetricFamily(f"{NS}_{name}", doc, labels=labels)
    return GaugeMetricFamily(f"{NS}_{name}", doc, labels=labels)


def _number(v: Any) -> float | None:
    if isinstance(v, bool | int | float) and not (isinstance(v, float) and math.isnan(v)):
        return float(v)
    return None


def _flat(d: Mapping[str, Any]) -> dict[str, Any]:
    """`outputs` nests one dict per sink; its keys are already unique, so merge them."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping):
            out.update(_flat(v))
        else:
            out[k] = v
    return out


def families(stats: Mapping[str, Any], vessel: str) -> Iterator[Metric]:
    """Metric families for one `stats()` snapshot (label `vessel` on every sample)."""
    for table, key, label in (
        (DEVICE_METRICS, "devices", "device"),
        (BUS_METRICS, "buses", "bus"),
    ):
        per = stats.get(key) or {}
        for skey, name, kind, doc in table:
            fam = _family(name, kind, doc, ["vessel", label])
            for item, st in sorted(per.items()):
                v = _number(st.get(skey))
                if v is not None:
                    fam.add_metric([vessel, item], v)
            yield fam
    if "devices" in stats:
        up = GaugeMetricFamily(
            f"{NS}_device_up", "1 while the device answers", labels=["vessel", "device"]
        )
        for dev, st in sorted(stats["devices"].items()):
            up.add_metric([vessel, dev], float(st.get("state") == "ok"))
        yield up
    for table, section in (
        (PIPELINE_METRICS, stats),
        (OUTPUT_METRICS, _flat(stats.get("outputs") or {})),
        (ALARM_KPI_METRICS, stats.get("alarms") or {}),
        (CLOCK_METRICS, stats.get("clock") or {}),
    ):
        for skey, name, kind, doc in table:
            v = _number(section.get(skey))
            if v is not None:
                fam = _family(name, kind, doc, ["vessel"])
                fam.add_metric([vessel], v)
                yield fam


class StatsCollector(Collector):
    """Calls `stats` on the event loop at each scrape (the HTTP thread only waits)."""

    def __init__(
        self,
        stats: Callable[[], Mapping[str, Any]],
        vessel: str,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.stats = stats
        self.vessel = vessel
        self.loop = loop
        self.scrape_errors = 0

    def _snapshot(self) -> Mapping[str, Any]:
        if self.loop is None:
            return self.stats()
        fut: concurrent.futures.Future[Mapping[str, Any]] = concurrent.futures.Future()

        def call() -> None:
            try:
                fut.set_result(self.stats())
            except Exception as exc:
                fut.set_exception(exc)

        self.loop.call_soon_threadsafe(call)
        return fut.result(SCRAPE_TIMEOUT_S)

    def collect(self) -> Iterator[Metric]:
        try:
            snap = self._snapshot()
        except Exception as exc:  # a scrape must never take the daemon down
            self.scrape_errors += 1
            log.warning("prometheus: stats unavailable for this scrape: %r", exc)
            snap = {}
        yield from families(snap, self.vessel)
        errs = CounterMetricFamily(
            f"{NS}_scrape_errors", "Scrapes without stats", labels=["vessel"]
        )
        errs.add_metric([self.vessel], float(self.scrape_errors))
        yield errs


class PrometheusExporter:
    """The `/metrics` HTTP server (prometheus-client's, in a daemon thread)."""

    def __init__(
        self, cfg: Prometheus, stats: Callable[[], Mapping[str, Any]], *, vessel: str
    ) -> None:
        self.cfg = cfg
        self.stats = stats
        self.vessel = vessel
        self._server: Any = None
        self._thread: Any = None
        self.port = cfg.port

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        from prometheus_client import start_http_server

        registry = CollectorRegistry(auto_describe=False)
        registry.register(StatsCollector(self.stats, self.vessel, loop))
        try:
            self._server, self._thread = start_http_server(
                self.cfg.port, addr=self.cfg.host, registry=registry
            )
        except OSError as exc:  # a busy port degrades the exporter, never the daemon
            log.error("prometheus: cannot listen on %s:%d: %s", self.cfg.host, self.cfg.port, exc)
            return
        self.port = int(self._server.server_address[1])
        log.info("prometheus /metrics on http://%s:%d/metrics", self.cfg.host, self.port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None
