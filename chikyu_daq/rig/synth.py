"""A simulated plant run written as a recorded run: the one writer behind `hil synth`, the
Monte-Carlo campaign (benchmarks/bench_campaign.py) and the fleet's synthetic archives.

The run has the daemon's format (raw parts, events, manifest with the config) so that replay
and the fleet read it as any recording, and the plant's truth beside it: ``truth.parquet``
(1 Hz series, :data:`hil.plant.TRUTH_SERIES`) and ``truth.json`` (the totals at the end).
The ship's lab (the scenario's ``lab_interval_s``, ``lab_delay_s``, ``lab_error_rel``) is
recorded as assay events, each with the first grid point of ``cfg`` at which the DAQ could
apply it (``applied_ns``), as the live daemon records them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from chikyu_daq.store.events import AssayEvent
from chikyu_daq.store.writer import Recorder

if TYPE_CHECKING:
    from chikyu_daq.config.model import Config
    from hil.scenario import Scenario

#: Simulated seconds per block: one plant kernel call and one raw part each.
BLOCK_S = 600.0


@dataclass(frozen=True)
class SynthRun:
    """A written synthetic run: its folder, how many samples it holds and its truth.json."""

    path: Path
    samples: int
    truth: dict[str, Any]


def record_synth(
    scenario: Scenario,
    hours: float,
    root: Path,
    cfg: Config,
    *,
    start_ns: int,
    seed: int | None = None,
    run_id: str | None = None,
    lab: bool = True,
    progress: Callable[[float], None] | None = None,
) -> SynthRun:
    """Write ``hours`` of ``scenario``'s plant as the run ``root/<run_id>/``.

    ``cfg``: the installation config recorded in the manifest, on whose grid the lab's results
    apply. ``seed``: the plant's draws (default: the scenario's; recorded when given).
    ``run_id``: default ``synth-<scenario>-<start in unix seconds>``. ``lab``: record the
    lab's assays. ``progress``: called after each block with the simulated seconds written.
    """
    from hil.plant import synth_blocks

    synthetic: dict[str, Any] = {"scenario": scenario.name, "hours": hours}
    if seed is not None:
        synthetic["seed"] = seed
    rec = Recorder(
        root,
        run_id=run_id or f"synth-{scenario.name}-{start_ns // 10**9}",
        manifest={"config": cfg.model_dump(mode="json"), "synthetic": synthetic},
        segment_s=3600.0,
        flush_s=1.0,
        autoflush=False,
    )
    truth_parts: list[pa.Table] = []
    samples = 0
    totals = None
    blocks = synth_blocks(
        scenario, hours, start_ns, BLOCK_S, seed=seed, grid_hz=cfg.processing.grid_hz
    )
    for block in blocks:
        rec.write_raw(block.channels)
        for assay in block.assays if lab else ():  # sampled on deck, applied when known
            rec.write_event(AssayEvent(**assay._asdict()))
        rec.flush()
        samples += sum(len(c[0]) for c in block.channels.values())
        truth_parts.append(pa.table({k: np.asarray(v) for k, v in block.truth.items()}))
        totals = block.totals
        if progress is not None:
            progress(block.end_s)
    rec.close()
    assert totals is not None  # synth_blocks refuses hours <= 0, so there was a block
    pq.write_table(pa.concat_tables(truth_parts), rec.path / "truth.parquet")
    truth = {
        "scenario": scenario.name,
        "hours": hours,
        "delivered_rey_kg": totals.rey_delivered_kg,
        "delivered_solids_kg": totals.solids_delivered_kg,
        "rey_in_kg": totals.rey_in_kg,
        "rey_riser_kg": totals.rey_riser_kg,
        "solids_balance_error_kg": totals.solids_balance_error_kg,
    }
    (rec.path / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return SynthRun(rec.path, samples, truth)
