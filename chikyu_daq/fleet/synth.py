"""Synthetic fleet archives for tests and benchmarks: `hil synth` runs, one per vessel."""

from __future__ import annotations

from pathlib import Path

from chikyu_daq.rig.synth import record_synth


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
    """Write one synthetic run of `vessel` under `root/<vessel>/runs/`; returns its folder.

    Without the lab's assays, as the fleet's archives have always been written (their replays
    keep the config's grade)."""
    from chikyu_daq.rig.session import scenario_config
    from hil.scenario import load_scenario

    sc = load_scenario(scenario)
    if full_scale:
        sc = sc.at_full_scale()
    cfg = scenario_config(sc)
    cfg = cfg.model_copy(update={"site": cfg.site.model_copy(update={"vessel": vessel})})
    run = record_synth(
        sc,
        hours,
        root / vessel / "runs",
        cfg,
        start_ns=start_ns,
        seed=seed,
        run_id=run_id,
        lab=False,
    )
    return run.path
