"""Import: a run exported and imported back (CSV, Parquet, InfluxDB) replays to the same results;
bad rows are counted by reason, never silently dropped."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from chikyu_daq.cli.root import app
from chikyu_daq.config.model import Config, load_config
from chikyu_daq.fleet.importer import import_file
from chikyu_daq.replay.engine import ReplayOptions, replay
from chikyu_daq.sinks.fanout import Outputs
from chikyu_daq.store.reader import open_run
from chikyu_daq.store.writer import Recorder
from tests.chikyu_daq.live.test_processor import T0, synth
from tests.servers import Influxd, wait_until

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(REPO / "config" / "reference.toml")


@pytest.fixture(scope="module")
def run_dir(cfg: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    with Recorder(root, manifest={"config": cfg.model_dump(mode="json")}, segment_s=60) as rec:
        data = synth(120.0, seed=5)
        t, v, q = data["dt201.density"]
        v, q = v.copy(), q.copy()
        v[40:50], q[40:50] = np.nan, 2  # a dropout: NaN values with BAD quality travel too
        data["dt201.density"] = (t, v, q)
        rec.write_raw(data)
        rec.write_event(
            {"type": "assay", "t_ns": T0 + 30 * 10**9, "rey_ppm": 2600.0, "u_rey_ppm": 70.0}
        )
    return rec.path


def results(run: Path, out: Path) -> tuple[dict, dict[str, np.ndarray]]:
    summary = replay(run, ReplayOptions(out_dir=out, report=False))
    table = pq.read_table(out / "results.parquet")
    return summary, {c: table[c].to_numpy() for c in table.column_names}


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f"), k


async def through_pipeline(live: Config, data: dict, ship: Path) -> str:
    """`data` (60 s) through the daemon's outputs with its InfluxDB sink on; the run id."""
    out = Outputs(live, data_dir=ship, influx_enabled=True, mqtt_enabled=False)
    await out.start()
    tasks = out.tasks()
    for lo in range(0, 60, 5):  # five-second deliveries, as the hub hands them over
        lo_ns, hi_ns = T0 + lo * 10**9, T0 + (lo + 5) * 10**9
        block = {}
        for ch, (t, v, q) in data.items():
            m = (t >= lo_ns) & (t < hi_ns)
            block[ch] = (t[m], v[m], q[m])
        out.write_raw(block)
    await out.aclose(30.0)
    for task in tasks:
        task.cancel()
    return out.run_id


@pytest.mark.parametrize(("suffix", "time_format"), [(".csv", "iso"), (".parquet", "ns")])
def test_exported_and_reimported_run_replays_to_the_same_results(
    cfg: Config, run_dir: Path, tmp_path: Path, suffix: str, time_format: str
) -> None:
    exported = tmp_path / f"run{suffix}"
    res = CliRunner().invoke(
        app, ["export", str(run_dir), "--out", str(exported), "--time", time_format]
    )
    assert res.exit_code == 0, res.output
    new, report = import_file(
        exported, cfg, tmp_path / "data", events=Path(f"{exported}.events.jsonl")
    )
    assert report.bad_rows == {}
    assert report.rows_imported == open_run(run_dir).raw_table().num_rows
    ref_summary, ref = results(run_dir, tmp_path / "a")
    got_summary, got = results(new, tmp_path / "b")
    assert_same(got, ref)
    assert got_summary["cum_rey_kg"] == ref_summary["cum_rey_kg"]
    manifest = json.loads((new / "manifest.json").read_text())
    assert manifest["import"]["source"]["path"] == str(exported)
    assert manifest["config"]["site"]["vessel"] == cfg.site.vessel


CSV = """channel,time,value,quality
ft201.volume_flow,2026-02-01T00:00:00Z,330.5,0
ft201.volume_flow,2026-02-01T00:00:00.1+00:00,330.25,
,2026-02-01T00:00:00.2Z,330.0,0
ft201.volume_flow,yesterday,330.0,0
ft201.volume_flow,2026-02-01T00:00:00.3Z,lots,0
ft201.volume_flow,2026-02-01T00:00:00.4Z,330.0,300
dt201.density,1769904000.5,1050.0,0
dt201.density,2026-02-01 00:00:01,nan,2
"""


def test_bad_rows_are_counted_by_reason_and_the_good_ones_kept(cfg: Config, tmp_path: Path) -> None:
    src = tmp_path / "hist.csv"
    src.write_text(CSV)
    res = CliRunner().invoke(
        app, ["import", "file", str(src), "-c", str(REPO / "config" / "reference.toml"),
              "--out", str(tmp_path / "data"), "--run-id", "h1", "--vessel", "kaimei"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    run = open_run(tmp_path / "data" / "runs" / "h1")
    report = json.loads((run.path / "import_report.json").read_text())
    assert report["rows_read"] == 8
    assert report["bad_rows"] == {
        "missing channel": 1,
        "bad time": 1,
        "bad value": 1,
        "bad quality": 1,
    }
    assert run.manifest["import"]["bad_rows_total"] == 4
    assert run.manifest["config"]["site"]["vessel"] == "kaimei"
    raw = run.raw()
    t0 = 1_769_904_000 * 10**9  # 2026-02-01T00:00:00Z
    assert raw["ft201.volume_flow"][0].tolist() == [t0, t0 + 100_000_000]
    assert raw["ft201.volume_flow"][1].tolist() == [330.5, 330.25]
    assert raw["ft201.volume_flow"][2].tolist() == [0, 0]
    assert raw["dt201.density"][0].tolist() == [t0 + 500_000_000, t0 + 10**9]
    assert np.isnan(raw["dt201.density"][1][1]) and raw["dt201.density"][2][1] == 2
    assert "4 bad rows left out" in res.output


@pytest.mark.parametrize(("unit", "scale"), [("s", 10**9), ("ms", 10**6), ("ns", 1)])
def test_epoch_units_are_recognised(cfg: Config, tmp_path: Path, unit: str, scale: int) -> None:
    t0 = 1_769_904_000 * 10**9
    rows = [f"ft201.volume_flow,{(t0 + k * 10**9) // scale},{300 + k}" for k in range(3)]
    src = tmp_path / "e.csv"
    src.write_text("channel,time,value\n" + "\n".join(rows) + "\n")
    run, report = import_file(src, cfg, tmp_path / "d", run_id="e")
    assert report.time_unit == unit
    assert open_run(run).raw()["ft201.volume_flow"][0].tolist() == [t0, t0 + 10**9, t0 + 2 * 10**9]


def test_a_file_without_the_long_columns_is_refused_clearly(tmp_path: Path) -> None:
    src = tmp_path / "wide.csv"
    src.write_text("time,ft201,dt201\n2026-02-01T00:00:00Z,1,2\n")
    res = CliRunner().invoke(
        app, ["import", "file", str(src), "-c", str(REPO / "config" / "reference.toml"),
              "--out", str(tmp_path / "d")],
    )  # fmt: skip
    assert res.exit_code == 2
    assert "no column channel, value" in res.output


@pytest.mark.servers
def test_a_run_written_to_influxd_by_the_pipeline_imports_back_to_the_same_results(
    cfg: Config, influxd: Influxd, tmp_path: Path
) -> None:
    influxd.create_db("fleet")
    icfg = cfg.outputs.influx.model_copy(
        update={"enabled": True, "dialect": "v1", "url": influxd.url, "db": "fleet"}
    )
    live = cfg.model_copy(update={"outputs": cfg.outputs.model_copy(update={"influx": icfg})})
    data = synth(60.0, seed=9)
    run_id = asyncio.run(through_pipeline(live, data, tmp_path / "ship"))
    n = sum(len(t) for t, _, _ in data.values())

    def stored() -> int:
        res = influxd.query('SELECT count("volume_flow") FROM "ft201"', db="fleet")
        return int(res["results"][0]["series"][0]["values"][0][1])

    wait_until(lambda: stored() == len(data["ft201.volume_flow"][0]), 30)

    def iso(t_ns: int) -> str:
        return str(np.datetime64(t_ns, "ns")) + "Z"

    res = CliRunner().invoke(
        app,
        ["import", "influx", "-c", str(REPO / "config" / "reference.toml"), "--out", str(tmp_path / "ashore"),
         "--dialect", "v1", "--from", iso(T0 - 10**9), "--to", iso(T0 + 70 * 10**9),
         "--run", run_id, "--db", "fleet",
         "--url", influxd.url, "--run-id", "back"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    new = tmp_path / "ashore" / "runs" / "back"
    report = json.loads((new / "import_report.json").read_text())
    assert report["rows_imported"] == n and report["bad_rows"] == {}
    assert (
        report["source"] | {"kind": "influxdb-v1", "vessel": "chikyu", "run": run_id}
        == report["source"]
    )
    recorded = tmp_path / "ship" / "runs" / run_id
    _, ref = results(recorded, tmp_path / "a")
    _, got = results(new, tmp_path / "b")
    # float64 values travel as shortest round-trip decimals and times as integer ns, so the
    # line protocol's precision here is exact
    assert_same(got, ref)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_run_still_open_exports_every_flushed_sample(tmp_path: Path, suffix: str) -> None:
    """A crashed (or still recording) run's last segment is the recorder's append-only stream,
    not Parquet: the export reads it like the replay does."""
    from chikyu_daq.fleet.importer import export_run

    rec = Recorder(tmp_path / "runs", run_id="open", autoflush=False)
    t = T0 + np.arange(50, dtype=np.int64) * 100_000_000
    rec.write_raw({"ft201.volume_flow": (t, 330.0 + np.arange(50.0), np.zeros(50, np.uint8))})
    rec.flush()  # durable and readable, segment not compacted: as after kill -9
    run = open_run(tmp_path / "runs" / "open")
    assert export_run(run, tmp_path / f"out{suffix}") == run.raw_table().num_rows == 50
