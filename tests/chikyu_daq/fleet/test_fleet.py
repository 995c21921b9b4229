"""Fleet replay and sweeps through a real Dask cluster equal serial replays, run by run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from chikyu_daq.cli.root import app
from chikyu_daq.replay.engine import ReplayOptions, recorded_config, replay
from chikyu_daq.store.reader import open_run
from dsp.params import REF_LEARNED, REF_MUD
from tests.chikyu_daq.fleet.fleet_fixtures import (
    COMMANDS,
    FLOW_DEAD,
    LATE_ASSAY_S,
    SEAWATER,
    START_NS,
    DaskProcs,
    fleet_archive,
    start_dask,
)

pytestmark = pytest.mark.slow


def assert_same_table(got: pa.Table, ref: pa.Table) -> None:
    """Same schema, same values bit for bit (NaN where NaN): Table.equals treats NaN != NaN."""
    assert got.schema.equals(ref.schema)
    for name in ref.column_names:
        a, b = got[name].to_numpy(), ref[name].to_numpy()
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("archive")
    return root, fleet_archive(root)


@pytest.fixture(scope="module")
def dask(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskProcs]:
    yield from start_dask(tmp_path_factory.mktemp("dask"), n_workers=2)


@pytest.fixture(scope="module")
def serial(
    archive: tuple[Path, list[Path]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[dict, pa.Table]]:
    """Each run replayed alone, in this process: the reference the cluster must reproduce."""
    out = {}
    for run in archive[1]:
        folder = tmp_path_factory.mktemp("serial")
        summary = replay(run, ReplayOptions(out_dir=folder, report=False))
        out[run.name] = (summary, pq.read_table(folder / "results.parquet"))
    return out


@pytest.fixture(scope="module")
def fleet_out(
    archive: tuple[Path, list[Path]], dask: DaskProcs, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, int, str]:
    out = tmp_path_factory.mktemp("fleet") / "out"
    res = CliRunner().invoke(
        app, ["replay", str(archive[0]), "--scheduler", dask.address, "--out", str(out)]
    )
    return out, res.exit_code, res.output


def test_fleet_replay_on_a_real_cluster_equals_serial_replays(
    fleet_out: tuple[Path, int, str], serial: dict[str, tuple[dict, pa.Table]]
) -> None:
    out, code, text = fleet_out
    summary = pq.read_table(out / "fleet_summary.parquet").to_pylist()
    by_run = {r["run_id"]: r for r in summary}
    # the broken run is reported, the others finished; the exit code says one failed
    assert code == 1, text
    assert by_run["empty"]["status"] == "failed"
    assert "no raw samples" in by_run["empty"]["error"]
    assert "FAILED kaimei/empty" in text
    results = ds.dataset(out / "results", format="parquet", partitioning="hive")
    for run_id, (ref_summary, ref_table) in serial.items():
        row = by_run[run_id]
        assert row["status"] == "ok"
        assert row["cum_rey_kg"] == ref_summary["cum_rey_kg"]
        assert row["u95_cum_rey_kg"] == ref_summary["u95_cum_rey_kg"]
        got = results.to_table(filter=ds.field("run") == run_id).sort_by("t_ns")
        got = got.select(ref_table.column_names)
        assert_same_table(got, ref_table)
    # both workers took runs: the tasks really ran distributed
    assert len({r["worker"] for r in summary if r["status"] == "ok"}) == 2


def test_a_run_across_midnight_lands_in_two_day_partitions(
    fleet_out: tuple[Path, int, str], archive: tuple[Path, list[Path]]
) -> None:
    out = fleet_out[0]
    first = archive[1][0]
    days = sorted(
        p.name for p in (out / "results" / "vessel=chikyu" / f"run={first.name}").iterdir()
    )
    assert days == ["day=2026-02-01", "day=2026-02-02"]
    folder = out / "results" / "vessel=chikyu" / f"run={first.name}"
    midnight = int(np.datetime64("2026-02-02T00:00:00", "ns").astype(np.int64))
    before = pq.read_table(folder / "day=2026-02-01")["t_ns"].to_numpy()
    after = pq.read_table(folder / "day=2026-02-02")["t_ns"].to_numpy()
    assert before.max() < midnight <= after.min()


def test_sweep_on_a_real_cluster_equals_serial_replays(
    archive: tuple[Path, list[Path]], dask: DaskProcs, tmp_path: Path
) -> None:
    runs = archive[1][:2]
    out = tmp_path / "sweep"
    res = CliRunner().invoke(
        app,
        ["sweep", *map(str, runs), "--set", "physics.rho_s_kg_m3=2400,2600",
         "--scheduler", dask.address, "--out", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    sens = pq.read_table(out / "sensitivity.parquet").to_pylist()
    assert len(sens) == 4
    for row in sens:
        run = open_run(next(r for r in runs if r.name == row["run_id"]))
        cfg = recorded_config(run)
        base = replay(run.path, ReplayOptions(out_dir=tmp_path / "b", report=False))
        heavier = cfg.model_copy(
            update={
                "physics": cfg.physics.model_copy(
                    update={"rho_s_kg_m3": row["physics.rho_s_kg_m3"]}
                )
            }
        )
        ref = replay(run.path, ReplayOptions(out_dir=tmp_path / "s", report=False), cfg=heavier)
        assert row["cum_rey_kg"] == ref["cum_rey_kg"]
        assert row["baseline_rey_kg"] == base["cum_rey_kg"]
        assert row["d_rey_kg"] == pytest.approx(ref["cum_rey_kg"] - base["cum_rey_kg"], rel=1e-12)
    assert "physics.rho_s_kg_m3" in res.output


def test_a_sweep_key_that_does_not_exist_is_named_and_nothing_runs(
    archive: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    res = CliRunner().invoke(
        app,
        ["sweep", str(archive[1][0]), "--set", "physics.rho_sx=1", "--workers", "1",
         "--out", str(tmp_path / "o")],
    )  # fmt: skip
    assert res.exit_code == 2
    assert "physics.rho_sx: no such config key" in res.output
    assert not (tmp_path / "o").exists()


def test_analysts_read_the_dataset_with_duckdb_polars_and_pandas(
    fleet_out: tuple[Path, int, str], serial: dict[str, tuple[dict, pa.Table]]
) -> None:
    import duckdb
    import pandas as pd
    import polars as pl

    root = fleet_out[0] / "results"
    glob = str(root / "**" / "*.parquet")
    con = duckdb.connect()
    duck = dict(
        con.execute(
            "SELECT run, max(cum_rey_kg) FROM read_parquet(?, hive_partitioning = true) GROUP BY run",
            [glob],
        ).fetchall()
    )
    pol = dict(
        pl.scan_parquet(glob, hive_partitioning=True)
        .group_by("run")
        .agg(pl.col("cum_rey_kg").max())
        .collect()
        .iter_rows()
    )
    pan = pd.read_parquet(root).groupby("run", observed=True)["cum_rey_kg"].max().to_dict()
    pan = {str(k): v for k, v in pan.items()}
    expected = {
        run_id: float(tab["cum_rey_kg"].to_numpy()[-1]) for run_id, (_, tab) in serial.items()
    }
    assert duck == pol == pan == pytest.approx(expected, rel=0, abs=0)
    n_rows = sum(t.num_rows for _, t in serial.values())
    assert con.execute(
        "SELECT count(*) FROM read_parquet(?, hive_partitioning = true)", [glob]
    ).fetchone() == (n_rows,)
    days = con.execute(
        "SELECT DISTINCT vessel, day FROM read_parquet(?, hive_partitioning = true) ORDER BY 1, 2",
        [glob],
    ).fetchall()
    assert [(v, str(d)) for v, d in days] == [
        ("chikyu", "2026-02-01"), ("chikyu", "2026-02-02"), ("kaimei", "2026-02-01"), ("kaimei", "2026-02-02"),
    ]  # fmt: skip


def test_the_same_run_twice_is_refused_before_anything_runs(
    archive: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy" / archive[1][1].name
    shutil.copytree(archive[1][1], copy)
    res = CliRunner().invoke(
        app,
        ["replay", str(archive[1][1]), str(copy), "--workers", "1", "--out", str(tmp_path / "o")],
    )
    assert res.exit_code == 2
    assert f"run {copy.name} of chikyu twice" in res.output
    assert not (tmp_path / "o").exists()


def test_one_run_replays_exactly_as_before(
    archive: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    res = CliRunner().invoke(
        app, ["replay", str(archive[1][1]), "--out", str(tmp_path), "--no-report"]
    )
    assert res.exit_code == 0, res.output
    assert {p.name for p in tmp_path.iterdir()} == {
        "results.parquet",
        "events.jsonl",
        "summary.json",
    }


#: Per column: how far a time-split replay may be from the serial one (relative to the column's
#: largest magnitude); every column not named here must be bit-identical, NaN where NaN. The
#: cause of every difference is the order of floating-point additions: a handed-over total is a
#: sum of per-partition sums, where the serial replay has one running sum (a few ulp of the
#: total, measured <= 1e-14; the bound leaves a margin of 100). E2, E3 and E1's
#: volume-weighted window read the history back through the running pumped volume and E1's
#: cumulative Cv*dV: differences of two large totals, divided by one grid step's volume, so the
#: ulp of the total grows by total / step volume (~1e5 here; measured <= 2e-12, bound 1e-9).
#: The plug indicator is a slope of a head that contains the inventory total (measured 5e-16),
#: and the stability index is the plug's component where that decides it. The drives' energy
#: is a handed-over total too, and the specific energy its quotient by one.
TOTALS = 1e-12
THROUGH_VOLUME = 1e-9
SPLIT_BOUNDS = {
    **dict.fromkeys(
        ("cum_rey_kg", "cum_reo_kg", "u95_cum_rey_kg", "u95_cum_reo_kg", "cum_solids_kg",
         "u95_cum_solids_kg", "inventory_kg", "gap_s", "cum_energy_kwh",
         "specific_energy_kwh_t"),
        TOTALS,
    ),
    **dict.fromkeys(("plug_indicator_bar_s", "plug_expected_bar_s", "stability_index"), TOTALS),
    **dict.fromkeys(
        ("ms_e2_kg_s", "transit_s", "cv_e3_delayed", "cv_e1_window", "disagreement_z",
         "disagreement_e3_z"),
        THROUGH_VOLUME,
    ),
}  # fmt: skip


def assert_split_equal(got: pa.Table, ref: pa.Table) -> None:
    """Every column bit-identical (NaN where NaN) but those of `SPLIT_BOUNDS`, within theirs."""
    for name in ref.column_names:
        a, b = got[name].to_numpy(), ref[name].to_numpy()
        if name in SPLIT_BOUNDS:
            scale = np.nanmax(np.abs(b))
            assert np.nanmax(np.abs(a - b)) <= SPLIT_BOUNDS[name] * scale, name
            assert np.array_equal(np.isnan(a), np.isnan(b)), name
        else:
            assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name


def _events(path: Path) -> list[dict]:
    """In time order (a replay writes a block's alarm edges, then its other records)."""
    return sorted(
        (json.loads(line) for line in path.read_text().splitlines()), key=lambda e: e["t_ns"]
    )


@pytest.fixture(scope="module")
def day_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 h at a 1 Hz grid (the split logic does not care about the rate; CI time does)."""
    from chikyu_daq.config.model import load_config
    from tests.chikyu_daq.fleet.fleet_fixtures import REPO, START_NS, long_run

    d = load_config(REPO / "config" / "reference.toml").model_dump(mode="json")
    d["processing"]["grid_hz"] = 1.0
    d["stability"].update(max_transit_s=2400.0, osc_f_hi_hz=0.2)  # transit ~1950 s at 330 m3/h
    return long_run(tmp_path_factory.mktemp("day"), d, 24.0, START_NS, rate_div=5)


def test_time_split_replay_of_24h_equals_serial_within_stated_bounds(
    day_run: Path, dask: DaskProcs, tmp_path: Path
) -> None:
    ref_summary = replay(day_run, ReplayOptions(out_dir=tmp_path / "serial", report=False))
    res = CliRunner().invoke(
        app,
        [
            "replay",
            str(day_run),
            "--split",
            "4",
            "--scheduler",
            dask.address,
            "--out",
            str(tmp_path / "split"),
        ],
    )
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "split" / "split.json").read_text())
    assert info["partitions"] == 6 and info["warmup_used_s"] >= info["warmup_s"] > 2400
    ref = pq.read_table(tmp_path / "serial" / "results.parquet")
    got = pq.read_table(tmp_path / "split" / "results.parquet")
    assert (
        got.schema.equals(ref.schema) and got.num_rows == ref.num_rows == ref_summary["grid_points"]
    )
    assert_split_equal(got, ref)
    # the same alarm events; their values (plug, z) within the bound of their column
    ref_events = _events(tmp_path / "serial" / "events.jsonl")
    got_events = _events(tmp_path / "split" / "events.jsonl")
    assert ref_events and [{**e, "value": None} for e in got_events] == [
        {**e, "value": None} for e in ref_events
    ]
    for e, r in zip(got_events, ref_events, strict=True):
        if r["type"] != "alarm":
            continue
        if r["value"] is None:  # not finite: a disagreement cleared by a stop is not compared
            assert e["value"] is None
        else:
            assert e["value"] == pytest.approx(r["value"], rel=THROUGH_VOLUME)
    # the gaps, E2 and the grade steps did happen, and did cross partitions
    assert ref["gap_s"].to_numpy()[-1] > 200
    assert np.isfinite(ref["ms_e2_kg_s"].to_numpy()).mean() > 0.5
    assert len(np.unique(ref["grade_ppm"].to_numpy())) >= 6
    # the seawater reference was learned in the first hour and relearned at 6.5-7 h (another
    # offset); the later partitions' warm-ups see no seawater: they got it handed over
    zero, t = ref["rho_zero_kg_m3"].to_numpy(), ref["t_ns"].to_numpy()
    hours = (t - t[0]) / 3.6e12
    # the 13 h assay came late: applied from where the live daemon applied it, in a partition
    grade, late_h = ref["grade_ppm"].to_numpy(), 13.0 + LATE_ASSAY_S / 3600.0
    assert (grade[(hours > 13.01) & (hours < late_h - 0.01)] == 2300.0).all()
    assert (grade[(hours > late_h + 0.01) & (hours < 16.99)] == 2450.0).all()
    assert ref["referenced"].to_numpy()[hours > 1].min() == 1
    assert zero[(hours > 1) & (hours < 6.5)] == pytest.approx(SEAWATER[0][2], abs=0.3)
    (c1, _), (c2, c2_s) = ((t / 3600.0, d / 3600.0) for t, d in COMMANDS)
    assert zero[(hours > 7.0) & (hours < c2)] == pytest.approx(SEAWATER[1][2], abs=0.3)
    assert len(np.unique(zero[(hours > 7.0) & (hours < c2)])) == 1
    # the operator's commands (recorded as applied): the first refused (mud is lifted), done
    # before the 4 h partition's learn point; the second learned the last seawater phase (too
    # short for the automatic reference) over a window open across the 16 h partition's learn
    # point, so that partition started before the command
    state = ref["ref_cmd_state"].to_numpy()
    assert (state[(hours > c1 + 0.1) & (hours < c2)] == REF_MUD).all()
    assert (state[hours > c2 + c2_s + 0.01] == REF_LEARNED).all()
    assert zero[hours > c2 + c2_s + 0.01] == pytest.approx(SEAWATER[2][2], abs=0.3)
    assert [e["type"] for e in ref_events].count("seawater_reference") == len(COMMANDS)
    assert info["warmup_used_s"] > info["warmup_s"] + c2_s * 3600
    # the drives' energy and the specific energy were integrated across every partition
    energy = ref["cum_energy_kwh"].to_numpy()
    assert np.isfinite(energy[-1]) and energy[-1] > 0.5 * 2 * 350.0 * hours[-1]
    assert np.isfinite(ref["specific_energy_kwh_t"].to_numpy()[-1])
    # the dead return flowmeter's gap began before the last partition's warm-up and ended after
    # its learn point: the gap's start, the held flow and the alarm state that the flow's NaN
    # values held (ESTIMATOR_DISAGREEMENT) came from the hand-over
    warm_h = (info["bounds_ns"][-1][0] - t[0]) / 3.6e12 - info["warmup_used_s"] / 3600.0
    assert FLOW_DEAD[0] < warm_h and warm_h + 0.5 < FLOW_DEAD[1]
    gap = ref["gap_s"].to_numpy()
    assert gap[hours > FLOW_DEAD[1] + 0.01][0] - gap[hours < FLOW_DEAD[0]][-1] > 5000
    assert info["alarm_hand_overs"] >= 1


def test_without_the_warm_up_or_the_hand_over_the_split_would_not_match(
    day_run: Path, tmp_path: Path
) -> None:
    """The controls: the same partition started cold at its bound differs from the serial replay
    in its windows, and with the warm-up but without the learned state handed over it differs
    in the seawater reference; so the equality above is their doing."""
    from chikyu_daq.config.model import parse_config
    from chikyu_daq.fleet.split import LEARNED0, Part, plan, replay_part, zero_integrals

    run = open_run(day_run)
    cfg = parse_config(run.manifest["config"])
    part = plan(day_run, cfg, 4 * 3600.0)[3]
    assert part.warm_ns < part.learn_ns < part.take_ns < part.lo_ns
    lo, hi = part.lo_ns, part.hi_ns
    cold = Part(part.index, lo, lo, lo, lo, lo, hi, part.last)
    replay_part(str(day_run), cold, None, LEARNED0, zero_integrals(), str(tmp_path / "c.parquet"))
    replay_part(str(day_run), part, None, LEARNED0, zero_integrals(), str(tmp_path / "w.parquet"))
    replay(day_run, ReplayOptions(out_dir=tmp_path / "s", report=False, t_to_ns=hi))
    ref = pq.read_table(tmp_path / "s" / "results.parquet")
    ref = ref.filter(pc.greater_equal(ref["t_ns"], lo))

    def differ(got: pa.Table, cols: tuple[str, ...]) -> list[str]:
        return [c for c in cols
                if not np.array_equal(got[c].to_numpy(), ref[c].to_numpy(), equal_nan=True)]  # fmt: skip

    windows = ("cv_flow", "cv_torque", "flow_imbalance_z")
    assert differ(pq.read_table(tmp_path / "c.parquet"), windows) == list(windows)
    warm = pq.read_table(tmp_path / "w.parquet")
    assert differ(warm, windows) == []
    assert differ(warm, ("referenced", "rho_mix_kg_m3", "cv")) == [
        "referenced",
        "rho_mix_kg_m3",
        "cv",
    ]


#: Where the host clock stepped in `stepped_run` (h into the run): after the 3rd partition's
#: warm-up began, before the 4th partition's would (1 h partitions).
STEP_AT_H = 1.5


@pytest.fixture(scope="module", params=[20.0, -20.0], ids=["forward", "back"])
def stepped_run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, float]:
    """5 h at a 1 Hz grid whose stamping clock stepped by 20 s either way at `STEP_AT_H` (every
    sample from then on stamped so), with the `clock_step` event the daemon's check records."""
    from chikyu_daq.config.model import load_config
    from chikyu_daq.store.events import ClockStep, encode
    from chikyu_daq.store.reader import RAW_SCHEMA
    from tests.chikyu_daq.fleet.fleet_fixtures import REPO, long_run

    d = load_config(REPO / "config" / "reference.toml").model_dump(mode="json")
    d["processing"]["grid_hz"] = 1.0
    d["stability"].update(max_transit_s=2400.0, osc_f_hi_hz=0.2)
    run = long_run(tmp_path_factory.mktemp("stepped"), d, 5.0, START_NS, rate_div=5)
    step_s = float(request.param)
    at_ns, step_ns = START_NS + round(STEP_AT_H * 3600e9), round(step_s * 1e9)
    for seg in sorted((run / "raw").rglob("*.parquet")):  # rows stay in arrival order
        tab = pq.read_table(seg)
        t = tab["t_ns"].to_numpy()
        i = tab.schema.get_field_index("t_ns")
        tab = tab.set_column(i, "t_ns", pa.array(np.where(t >= at_ns, t + step_ns, t)))
        pq.write_table(tab.cast(RAW_SCHEMA), seg)
    with (run / "events.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps(encode(ClockStep(at_ns + step_ns, step_s))) + "\n")
    return run, step_s


def test_time_split_replay_across_a_clock_step_equals_serial(
    stepped_run: tuple[Path, float], dask: DaskProcs, tmp_path: Path
) -> None:
    """Every partition is fed the recorded step and re-bases at it as the serial replay does
    (without the event a forward step is an outage, processed as stamped); those that would
    start past it start before it (their internal timeline and grid lattice are the serial's)."""
    run, step_s = stepped_run
    serial = replay(run, ReplayOptions(out_dir=tmp_path / "serial", report=False))
    assert serial["clock_rebases"] == 1
    res = CliRunner().invoke(
        app,
        ["replay", str(run), "--split", "1", "--scheduler", dask.address,
         "--out", str(tmp_path / "split")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "split" / "split.json").read_text())
    assert info["partitions"] >= 5
    # the last partitions warmed up from before the step (else they would start after it)
    lo_last = (info["bounds_ns"][-1][0] - START_NS) / 3.6e12
    assert (
        lo_last - info["warmup_used_s"] / 3600.0 < STEP_AT_H < lo_last - info["warmup_s"] / 3600.0
    )
    ref = pq.read_table(tmp_path / "serial" / "results.parquet")
    got = pq.read_table(tmp_path / "split" / "results.parquet")
    assert got.schema.equals(ref.schema) and got.num_rows == ref.num_rows
    assert_split_equal(got, ref)
    # the grid bridged the step: one jump of its sign
    d = np.diff(ref["t_ns"].to_numpy())
    jumps = np.flatnonzero(d != 10**9)
    assert jumps.size == 1 and np.sign(d[jumps[0]] - 10**9) == np.sign(step_s)
    ref_events = _events(tmp_path / "serial" / "events.jsonl")
    got_events = _events(tmp_path / "split" / "events.jsonl")
    assert [e["type"] for e in got_events].count("clock_rebase") == 1
    alarms = [[{**e, "value": None} for e in ev if e["type"] == "alarm"]
              for ev in (got_events, ref_events)]  # fmt: skip
    assert alarms[0] == alarms[1]
