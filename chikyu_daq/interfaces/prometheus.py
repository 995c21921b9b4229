"""Prometheus `/metrics`: the daemon's own health, read from `Pipeline.stats()` at scrape time.

    exporter = PrometheusExporter(cfg.outputs.prometheus, stats, vessel="chikyu")
    exporter.start(asyncio.get_running_loop())   # HTTP server thread on host:port
    exporter.close()

Nothing is copied into prometheus-client metric objects ahead of time: a custom collector asks
the event loop for a fresh `stats()` on each scrape (the stats dicts belong to the loop thread,
so the HTTP thread never walks them itself). Which stats key becomes which metric is data,
`metrics.toml` beside this module; a key the stats do not have (a sink that is off) is simply
not exported.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from chikyu_daq.config.model import Prometheus

log = logging.getLogger(__name__)

NS = "chikyu"
SCRAPE_TIMEOUT_S = 2.0

#: (stats key, metric name without the `chikyu_` prefix, "counter" or "gauge", help text)
Row = tuple[str, str, str, str]
KINDS = ("counter", "gauge")


def load_metrics(path: Path) -> dict[str, tuple[Row, ...]]:
    """The metric table (`metrics.toml`), one tuple of rows per section of `stats()`."""
    with path.open("rb") as f:
        doc = tomllib.load(f)
    tables: dict[str, tuple[Row, ...]] = {}
    for section, entries in doc.items():
        rows = []
        for key, entry in entries.items():
            if not (isinstance(entry, list) and len(entry) == 3 and entry[1] in KINDS):
                raise ValueError(f"{path.name}: [{section}] {key}: want [name, kind, help]")
            rows.append((key, str(entry[0]), str(entry[1]), str(entry[2])))
        tables[section] = tuple(rows)
    return tables


METRICS = load_metrics(Path(__file__).with_name("metrics.toml"))
#: Sections of `stats()` holding one dict per item, and the label that names the item.
PER_ITEM = {"devices": "device", "buses": "bus"}


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
    for section, label in PER_ITEM.items():
        per = stats.get(section) or {}
        for skey, name, kind, doc in METRICS[section]:
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
    singles = {
        "pipeline": stats,
        "outputs": _flat(stats.get("outputs") or {}),
        "alarms": stats.get("alarms") or {},
        "clock": stats.get("clock") or {},
    }
    for section, values in singles.items():
        for skey, name, kind, doc in METRICS[section]:
            v = _number(values.get(skey))
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
