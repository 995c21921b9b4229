"""One object the pipeline holds for every interface to the ship's other systems.

The pipeline's hooks are four calls: `start()` once its outputs are up, `on_processed()` after
each result block (alarm events and the processor's active set), `stats()` merged into its
health, `aclose()` at shutdown. Each interface is off unless its config section enables it,
and a failing interface logs and degrades; it never stops acquisition.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chikyu_daq.config import Config

if TYPE_CHECKING:
    from chikyu_daq.pipeline import Pipeline
    from chikyu_daq.processor import Processed

log = logging.getLogger(__name__)


class Interfaces:
    def __init__(self, cfg: Config, *, data_dir: Path, pipeline: Pipeline) -> None:
        self.cfg = cfg
        self.data_dir = data_dir
        self.pipeline = pipeline
        self.prometheus: Any = None
        if cfg.outputs.prometheus.enabled:
            from chikyu_daq.interfaces.prometheus import PrometheusExporter

            self.prometheus = PrometheusExporter(
                cfg.outputs.prometheus, pipeline.stats, vessel=cfg.site.vessel
            )

    async def start(self) -> None:
        if self.prometheus is not None:
            self.prometheus.start(asyncio.get_running_loop())

    def tasks(self) -> list[asyncio.Task[Any]]:
        """Long-running tasks (they never return while the pipeline runs)."""
        return []

    def on_processed(self, processed: Processed) -> None:
        """Alarm raise/clear events of one result block, on the event loop."""

    def stats(self) -> dict[str, Any]:
        return {}

    async def aclose(self) -> None:
        if self.prometheus is not None:
            await asyncio.to_thread(self.prometheus.close)
