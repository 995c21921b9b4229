"""Servers and rigs for the interface tests: a real Prometheus, and the pipeline in-process
against the emulated hardware (`hil.emulators.rig.Rig`) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chikyu_daq.config.model import Config, load_config
from chikyu_daq.live.pipeline import Pipeline
from drivers.endpoints import override_buses
from hil.emulators.rig import Rig
from tests.servers import ServerProcess, http_answers, require_binary

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "config" / "reference.toml"


class PrometheusServer(ServerProcess):
    """Prometheus scraping one target every second; its HTTP API answers queries."""

    name = "prometheus"
    conf_name = "prometheus.yml"

    def __init__(self, workdir: Path, target: str) -> None:
        super().__init__(workdir)
        self.conf.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            f"scrape_configs:\n  - job_name: chikyu\n    static_configs:\n"
            f"      - targets: ['{target}']\n"
        )

    def command(self) -> list[str]:
        return [
            require_binary("prometheus", "prometheus"),
            f"--config.file={self.conf}",
            f"--storage.tsdb.path={self.workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]

    def ready(self) -> bool:
        return http_answers(f"{self.url}/-/ready", 200)

    def query(self, q: str) -> list[dict[str, Any]]:
        """Instant query; the result vector (labels and `[t, "value"]`)."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': q})}"
        with urllib.request.urlopen(url, timeout=5) as r:
            doc = json.loads(r.read())
        assert doc["status"] == "success", doc
        return list(doc["data"]["result"])


def reference(**sections: Any) -> Config:
    """The reference config with some sections replaced (dicts merged at the top level)."""
    cfg = load_config(REFERENCE)
    data = cfg.model_dump(mode="json")
    for key, value in sections.items():
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return Config.model_validate(data)


@dataclass
class Live:
    pipeline: Pipeline
    rig: Rig


@contextlib.asynccontextmanager
async def live_pipeline(cfg: Config, data_dir: Path, **pipeline_kw: Any) -> AsyncIterator[Live]:
    """Emulated hardware and the real pipeline on loopback, started; stopped on exit."""
    rig = Rig(cfg)
    async with rig:
        buses = override_buses(cfg.buses, rig.endpoints)
        pipeline = Pipeline(cfg, data_dir=data_dir, buses=buses, **pipeline_kw)
        task = asyncio.create_task(pipeline.run())
        started = asyncio.create_task(pipeline.started.wait())
        await asyncio.wait([task, started], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        try:
            yield Live(pipeline, rig)
        finally:
            pipeline.request_stop()
            await asyncio.wait_for(task, 30)
