"""Synthetic fleet archives for tests and benchmarks: `hil synth` runs, one per vessel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from chikyu_daq.store.writer import Recorder


def synth_run(
    root: Path,
    vessel: str,
    *,
    hours: float,
    start_ns: int,
    scenario: str = "nominal",
    seed: int | None = None,
    full_scale: bool = False,
    run_id: str | None = None,
) -> Path:
    """Write one synthetic run of `vessel` under `root/<vessel>/runs/`; returns its folder."""
    from chikyu_daq.rig.session import scenario_config
    from hil.plant import synth_blocks
    from hil.scenario import load_scenario

    sc = load_scenario(scenario)
    if full_scale:
        sc = sc.at_full_scale()
    cfg = scenario_config(sc)
    cfg = cfg.model_copy(update={"site": cfg.site.model_copy(update={"vessel": vessel})})
    manifest = {
        "config": cfg.model_dump(mode="json"),
        "synthetic": {"scenario": sc.name, "hours": hours, "seed": seed},
    }
    rec = Recorder(
        root / vessel / "runs",
        run_id=run_id or f"synth-{sc.name}-{start_ns // 10**9}",
        manifest=manifest,
        segment_s=3600.0,
        flush_s=1.0,
        autoflush=False,
    )
    truth: list[pa.Table] = []
    totals = None
    for block in synth_blocks(sc, hours, start_ns, 600.0, seed=seed):
        rec.write_raw(block.channels)
        rec.flush()
        truth.append(pa.table({k: np.asarray(v) for k, v in block.truth.items()}))
        totals = block.totals
    rec.close()
    pq.write_table(pa.concat_tables(truth), rec.path / "truth.parquet")
    if totals is not None:
        summary = {"scenario": sc.name, "hours": hours, "delivered_rey_kg": totals.rey_delivered_kg}
        (rec.path / "truth.json").write_text(json.dumps(summary, indent=2) + "\n")
    return rec.path
