"""Import from InfluxDB 2.x (Flux): the daemon's v2 writer → `/api/v2/write`, then
`chikyu-daq import influx --dialect v2` → `/api/v2/query` → a run that replays to the same
results.

No InfluxDB 2.x server can run here (Debian ships only `influxdb` 1.6.7, which has no Flux), so
the server is a stand-in: a real HTTP server on loopback that stores what the daemon's real
writer (influxdb-client) posts and answers Flux queries with annotated CSV laid out as the
InfluxDB documentation shows (annotation rows, a header, a table per series, a blank line and
new annotations where the column types change, RFC3339Nano times). It understands only the
query shape the importer sends; what it proves is the client side: the query per measurement,
vessel, run and time slice, the token handling and the annotated-CSV parsing.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from chikyu_daq.cli.root import app
from chikyu_daq.config.model import Config, load_config
from chikyu_daq.fleet.importer import SourceError, flux_csv_tables, flux_long_table
from chikyu_daq.store.reader import open_run
from tests.chikyu_daq.fleet.test_import import assert_same, results, through_pipeline
from tests.chikyu_daq.live.test_processor import T0, synth
from tests.servers import free_port, wait_until

REPO = Path(__file__).resolve().parents[3]
TOKEN = "s3cret-flux-token-0123456789"
ORG, BUCKET = "jamstec", "fleet"
#: A stored series' columns, as InfluxDB lays them out; the group key (a table per series).
ALL_COLUMNS = ("_start", "_stop", "_time", "_value", "_field", "_measurement", "run", "vessel")
GROUP_KEY = ("_field", "_measurement", "run", "vessel", "_start", "_stop")
COLUMN_TYPES = dict.fromkeys(("_start", "_stop", "_time"), "dateTime:RFC3339")


def rfc3339nano(t_ns: int) -> str:
    """Go's RFC3339Nano: fractional seconds with trailing zeros trimmed."""
    s, frac = divmod(t_ns, 10**9)
    base = str(np.datetime64(s, "s"))
    return base + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


def parse_time(text: str) -> int:
    return int(np.datetime64(text.rstrip("Z"), "ns").astype(np.int64))


def split_unescaped(text: str, sep: str) -> list[str]:
    return re.split(rf"(?<!\\){re.escape(sep)}", text)


class FluxStandIn:
    """Points as written (`measurement, tags, field, t_ns, text, type`); queries as asked."""

    def __init__(self) -> None:
        self.points: list[tuple[str, dict[str, str], str, int, str, str]] = []
        self.queries: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def write(self, body: str) -> None:
        for line in body.splitlines():
            if not line.strip():
                continue
            key, fields, t = split_unescaped(line, " ")
            meas, *tags = split_unescaped(key, ",")
            tag = dict(kv.split("=", 1) for kv in tags)
            with self.lock:
                for kv in split_unescaped(fields, ","):
                    name, raw = kv.split("=", 1)
                    kind = "long" if raw.endswith("i") else "double"
                    self.points.append((meas, tag, name, int(t), raw.rstrip("i"), kind))

    def query(self, flux: str) -> str:
        bucket = re.search(r'from\(bucket: "([^"]*)"\)', flux)
        rng = re.search(r"range\(start: (\S+), stop: (\S+)\)", flux)
        conds = dict(re.findall(r'r\.(\w+) == "([^"]*)"', flux))
        assert bucket and bucket.group(1) == BUCKET and rng, flux
        t0, t1 = parse_time(rng.group(1)), parse_time(rng.group(2))
        with self.lock:
            self.queries.append({"from": t0, "to": t1, **conds})
            pts = [p for p in self.points if t0 <= p[3] < t1]
        meas = conds.pop("_measurement")
        pts = [p for p in pts if p[0] == meas and all(p[1].get(k) == v for k, v in conds.items())]
        # keep() drops columns, and with them their part of the group key (series merge)
        keep = re.search(r"keep\(columns: \[([^\]]*)\]\)", flux)
        kept = re.findall(r'"([^"]*)"', keep.group(1)) if keep else None
        with self.lock:
            self.queries[-1]["keep"] = kept
        cols = [c for c in ALL_COLUMNS if kept is None or c in kept]
        group = [c for c in GROUP_KEY if c in cols]
        start, stop = rfc3339nano(t0), rfc3339nano(t1)
        series: dict[tuple[str, ...], list[dict[str, str]]] = {}
        kinds: dict[tuple[str, ...], str] = {}
        for m, tag, name, t, raw, kind in pts:
            row = {"_start": start, "_stop": stop, "_time": rfc3339nano(t), "_field": name,
                   "_value": str(float(raw)) if kind == "double" else raw, "_measurement": m,
                   "run": tag.get("run", ""), "vessel": tag.get("vessel", ""), "t": str(t)}  # fmt: skip
            key = tuple(row[c] for c in group)
            series.setdefault(key, []).append(row)
            kinds[key] = kind
        out: list[str] = []
        last_kind = None
        for table, key in enumerate(sorted(series)):
            kind = kinds[key]
            if kind != last_kind:  # new column types: a blank line, then annotations and header
                if out:
                    out.append("")
                types = [COLUMN_TYPES.get(c, "string") if c != "_value" else kind for c in cols]
                out += [
                    ",".join(
                        ["#group", "false", "false"] + [str(c in group).lower() for c in cols]
                    ),
                    ",".join(["#datatype", "string", "long", *types]),
                    ",".join(["#default", "_result"] + [""] * (1 + len(cols))),
                    ",".join(["", "result", "table", *cols]),
                ]
                last_kind = kind
            for row in sorted(series[key], key=lambda r: int(r["t"])):
                out.append(",".join(["", "", str(table)] + [row[c] for c in cols]))
        return "\r\n".join(out) + "\r\n\r\n"


@pytest.fixture
def flux_server() -> Iterator[tuple[str, FluxStandIn]]:
    store = FluxStandIn()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            if self.headers.get("Authorization") != f"Token {TOKEN}":
                msg = json.dumps({"code": "unauthorized", "message": "unauthorized access"})
                self._reply(401, msg.encode(), "application/json")
                return
            if self.path.startswith("/api/v2/write"):
                store.write(body.decode())
                self._reply(204, b"", "text/plain")
            elif self.path.startswith("/api/v2/query") and f"org={ORG}" in self.path:
                flux = json.loads(body)["query"]
                self._reply(200, store.query(flux).encode(), "text/csv; charset=utf-8")
            else:
                self._reply(404, b'{"code":"not found","message":"not found"}', "text/json")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", store
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def cfg() -> Config:
    return load_config(REPO / "config" / "reference.toml")


def v2_config(cfg: Config, url: str) -> Config:
    icfg = cfg.outputs.influx.model_copy(
        update={"enabled": True, "dialect": "v2", "url": url, "org": ORG, "bucket": BUCKET,
                "token_env": "CHIKYU_INFLUX_TOKEN", "token_file": None}
    )  # fmt: skip
    return cfg.model_copy(update={"outputs": cfg.outputs.model_copy(update={"influx": icfg})})


def test_a_run_written_by_the_v2_writer_imports_back_through_flux_to_the_same_results(
    cfg: Config,
    flux_server: tuple[str, FluxStandIn],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, store = flux_server
    monkeypatch.setenv("CHIKYU_INFLUX_TOKEN", TOKEN)
    live = v2_config(cfg, url)
    data = synth(60.0, seed=11)
    v, q = data["dt201.density"][1].copy(), data["dt201.density"][2].copy()
    v[100:110], q[100:110] = np.nan, 2  # NaN travels as a quality without its value
    data["dt201.density"] = (data["dt201.density"][0], v, q)

    run_id = asyncio.run(through_pipeline(live, data, tmp_path / "ship"))
    n = sum(len(t) for t, _, _ in data.values())
    wait_until(lambda: sum(1 for p in store.points if not p[2].endswith("_q")) >= n - 10, 30)

    lo, hi = T0 - 10**9, T0 + 70 * 10**9
    res = CliRunner().invoke(
        app,
        ["import", "influx", "-c", str(REPO / "config" / "reference.toml"), "--out", str(tmp_path / "ashore"),
         "--dialect", "v2", "--url", url, "--org", ORG, "--bucket", BUCKET,
         "--from", rfc3339nano(lo), "--to", rfc3339nano(hi), "--run", run_id,
         "--run-id", "back", "--slice-h", str(20 / 3600)],
        env={"CHIKYU_INFLUX_TOKEN": TOKEN},  # the reference config's token_env
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    new = tmp_path / "ashore" / "runs" / "back"
    report = json.loads((new / "import_report.json").read_text())
    assert report["rows_imported"] == n and report["bad_rows"] == {}
    assert report["source"]["kind"] == "influxdb-v2" and report["source"]["run"] == run_id
    # the token is never printed nor recorded
    assert TOKEN not in res.output
    assert all(TOKEN not in f.read_text(errors="replace") for f in new.glob("*.json"))
    # chunked: per measurement, 20 s slices that tile [lo, hi) exactly
    devices = {qq["_measurement"] for qq in store.queries}
    for dev in devices:
        spans = sorted((qq["from"], qq["to"]) for qq in store.queries if qq["_measurement"] == dev)
        assert spans[0][0] == lo and spans[-1][1] == hi
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        assert all(b - a <= 20 * 10**9 for a, b in spans)
    assert all(qq["vessel"] == "chikyu" and qq["run"] == run_id for qq in store.queries)
    # only the columns the importer reads come back: no tags or range bounds on every row
    assert all(qq["keep"] == ["_measurement", "_field", "_time", "_value"] for qq in store.queries)
    recorded = tmp_path / "ship" / "runs" / run_id
    order = [("channel", "ascending"), ("t_ns", "ascending")]
    raw_ref, raw_got = (open_run(r).raw_table() for r in (recorded, new))
    raw_ref, raw_got = (
        t.set_column(0, "channel", t["channel"].cast(pa.string())).sort_by(order)
        for t in (raw_ref, raw_got)
    )
    for c in ("channel", "t_ns", "value", "quality"):  # the samples themselves, NaN included
        a, b = raw_ref[c].to_numpy(zero_copy_only=False), raw_got[c].to_numpy(zero_copy_only=False)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), c
    _, ref = results(recorded, tmp_path / "a")
    _, got = results(new, tmp_path / "b")
    # float64 values travel as shortest round-trip decimals and times as integer ns: exact
    assert_same(got, ref)


def test_a_wrong_token_is_a_clear_error_that_does_not_echo_the_token(
    flux_server: tuple[str, FluxStandIn], tmp_path: Path
) -> None:
    url, _ = flux_server
    res = CliRunner().invoke(
        app,
        ["import", "influx", "-c", str(REPO / "config" / "reference.toml"), "--out",
         str(tmp_path), "--dialect", "v2", "--url", url, "--from", "2026-01-01T00:00:00Z",
         "--to", "2026-01-01T00:10:00Z"],
        env={"CHIKYU_INFLUX_TOKEN": "wrong-" + TOKEN},
    )  # fmt: skip
    assert res.exit_code == 2
    assert "HTTP 401 unauthorized access" in res.output
    assert TOKEN not in res.output and "Traceback" not in res.output


#: The annotated-CSV example of the InfluxDB documentation (`#group` first, a named result).
DOCUMENTED = b"""#group,false,false,true,true,false,false,true,true,true,true
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string,string
#default,mean,,,,,,,,,
,result,table,_start,_stop,_time,_value,_field,_measurement,host,region
,,0,2022-12-31T05:41:24Z,2023-01-31T05:41:24.001Z,2023-01-01T00:52:00Z,15.43,mem,m,A,east
,,1,2022-12-31T05:41:24Z,2023-01-31T05:41:24.001Z,2023-01-01T00:52:00Z,59.25,mem,m,B,east
,,2,2022-12-31T05:41:24Z,2023-01-31T05:41:24.001Z,2023-01-01T00:52:00Z,52.62,mem,m,C,east

#group,false,false,true,true,false,false,true,true,true,true
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,long,string,string,string,string
#default,mean,,,,,,,,,
,result,table,_start,_stop,_time,_value,_field,_measurement,host,region
,,3,2022-12-31T05:41:24Z,2023-01-31T05:41:24.001Z,2023-01-01T00:52:00.5Z,2,mem_q,m,A,east
"""


def test_the_documented_annotated_csv_is_read_table_by_table() -> None:
    tables = list(flux_csv_tables(iter(DOCUMENTED.splitlines(keepends=True))))
    assert [t.num_rows for t in tables] == [3, 1]
    assert tables[0]["_value"].to_pylist() == ["15.43", "59.25", "52.62"]
    long = flux_long_table(tables, "dev")
    rows = sorted(zip(*(long[c].to_pylist() for c in long.column_names), strict=True))
    # three mem values at :00 without a quality field; a quality at :00.5 without its value
    assert rows == [
        ("m.mem", "2023-01-01T00:52:00.5Z", "nan", "2"),
        *[("m.mem", "2023-01-01T00:52:00Z", v, None) for v in ("15.43", "52.62", "59.25")],
    ]


def test_an_error_table_in_the_stream_raises_with_the_servers_message() -> None:
    body = b"#datatype,string,string\n#group,true,true\n#default,,\n,error,reference\n"
    body += b',"query exceeded memory limit",897\n\n'
    with pytest.raises(SourceError, match="query exceeded memory limit"):
        list(flux_csv_tables(iter(body.splitlines(keepends=True))))


def test_a_missing_token_names_where_it_was_looked_for(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app,
        ["import", "influx", "-c", str(REPO / "config" / "reference.toml"), "--out",
         str(tmp_path), "--dialect", "v2", "--url", "http://127.0.0.1:9", "--from",
         "2026-01-01T00:00:00Z", "--to", "2026-01-01T00:10:00Z"],
        env={"CHIKYU_INFLUX_TOKEN": None, "CREDENTIALS_DIRECTORY": str(tmp_path)},
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "no InfluxDB token: $CHIKYU_INFLUX_TOKEN is unset and influx-token" in res.output
    assert "Traceback" not in res.output


def test_an_unreachable_server_is_a_clear_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app,
        ["import", "influx", "-c", str(REPO / "config" / "reference.toml"), "--out",
         str(tmp_path), "--dialect", "v2", "--url", f"http://127.0.0.1:{free_port()}",
         "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-01T00:10:00Z"],
        env={"CHIKYU_INFLUX_TOKEN": TOKEN},
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "cannot query InfluxDB at http://127.0.0.1:" in res.output
    assert TOKEN not in res.output and "Traceback" not in res.output
