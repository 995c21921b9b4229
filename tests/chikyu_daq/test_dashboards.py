"""Grafana dashboards (config/dashboards): every panel's query runs on data the pipeline wrote.

Grafana itself is not installable here. InfluxQL queries (v1 dashboard) run against a real
influxd after Grafana's macros are expanded as Grafana would. Flux (v2 dashboard) has no engine
here (influxd 1.6 has no Flux, VictoriaMetrics does not speak it), so its queries are checked
as far as honestly possible without one: brackets and strings balance, every pipe calls a
known Flux function, a time range bounds each query, and every measurement and field it names
(or matches by regex) exists in the data the same run wrote.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from chikyu_daq.sinks.fanout import STABILITY_FIELDS, YIELD_FIELDS
from tests.iface_servers import REPO, live_pipeline, reference
from tests.servers import Influxd

pytestmark = [pytest.mark.servers, pytest.mark.slow]

DASHBOARDS = REPO / "config" / "dashboards"
#: Grafana's InfluxQL macros and template variables, as Grafana expands them.
IQL_MACROS = {"$timeFilter": "time > now() - 1h", "$__interval": "1s", "$vessel": "chikyu"}
FLUX_FUNCTIONS = {
    "from", "range", "filter", "aggregateWindow", "pivot", "map", "keep", "group", "last",
    "derivative", "yield",
}  # fmt: skip


def _targets(name: str) -> list[tuple[str, str]]:
    dash = json.loads((DASHBOARDS / name).read_text())
    out = [(p["title"], t["query"]) for p in dash["panels"] for t in p["targets"]]
    out += [(f"variable {v['name']}", v["query"]) for v in dash["templating"]["list"]
            if v["type"] == "query"]  # fmt: skip
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """influxd with a short live run: yield, stability, alarm, alarm_state and daq."""
    influxd = Influxd(tmp_path_factory.mktemp("influxd"))
    influxd.start()
    influxd.create_db("chikyu")
    cfg = reference(
        **{
            "outputs.influx": {
                "enabled": True,
                "dialect": "v1",
                "url": influxd.url,
                "db": "chikyu",
            },
            "alarms.DEPOSITION_RISK": {"raise_at": 2.0, "clear_at": 2.5, "min_duration_s": 0.0},
        }
    )

    async def run() -> None:
        async with live_pipeline(cfg, tmp_path_factory.mktemp("data")) as live:
            await asyncio.sleep(4.0)  # a few health rows (1 Hz) and results (1 Hz)
            reply = live.pipeline.interfaces.command(
                {"action": "ack", "alarm": "DEPOSITION_RISK", "operator": "sato"}
            )
            assert reply["accepted"], reply

    try:
        asyncio.run(run())
        yield influxd
    finally:
        influxd.kill()


def test_every_influxql_panel_returns_series(written: Influxd) -> None:
    fields = _fields(written)
    targets = _targets("chikyu-influxql.json")
    assert len(targets) >= 12
    for title, query in targets:
        q = query
        for macro, value in IQL_MACROS.items():
            q = q.replace(macro, value)
        res = written.query(q, db="chikyu")["results"][0]
        assert "error" not in res, (title, res["error"])
        assert res.get("series"), f"{title}: no series for {q}"
        m = re.search(r'FROM "([^"]+)"', q)
        named = set(re.findall(r'\w+\("(\w+)"\)', q))
        if m and named and not title.startswith("variable"):
            _check_names(title, m.group(1), named, fields)  # no misspelt field hides


def _fields(influxd: Influxd) -> dict[str, set[str]]:
    """Fields written, plus the yield/stability schema (a short run leaves windowed ones NaN,
    and NaN is not written)."""
    res = influxd.query("SHOW FIELD KEYS", db="chikyu")["results"][0]["series"]
    out = {s["name"]: {row[0] for row in s["values"]} for s in res}
    out["yield"] |= set(YIELD_FIELDS)
    out["stability"] |= set(STABILITY_FIELDS)
    return out


def _check_names(title: str, meas: str, named: set[str], fields: dict[str, set[str]]) -> None:
    assert meas in fields, (title, meas)
    assert named & fields[meas], (title, named)  # at least one field exists ...
    missing = named - fields[meas]
    # ... and the only absent ones are optional sinks' (MQTT is off in this run)
    assert all("mqtt" in f for f in missing), (title, missing)


def _balanced(text: str) -> bool:
    pairs, stack = {")": "(", "]": "[", "}": "{"}, []
    for tok in re.sub(r'"(?:[^"\\]|\\.)*"|/(?:[^/\\\n]|\\.)+/', '""', text):
        if tok in "([{":
            stack.append(tok)
        elif tok in pairs and (not stack or stack.pop() != pairs[tok]):
            return False
    return not stack and text.count('"') % 2 == 0


def test_every_flux_panel_is_well_formed_and_names_written_fields(written: Influxd) -> None:
    fields = _fields(written)
    targets = _targets("chikyu-flux.json")
    assert len(targets) >= 12
    for title, query in targets:
        assert _balanced(query), title
        calls = re.findall(r"\|>\s*([A-Za-z_][\w.]*)\s*\(", query)
        assert set(calls) <= FLUX_FUNCTIONS, (title, set(calls) - FLUX_FUNCTIONS)
        if title.startswith("variable"):
            assert "schema.tagValues" in query
            continue
        assert query.startswith('from(bucket: "${bucket}")'), title
        assert "range(start: v.timeRangeStart, stop: v.timeRangeStop)" in query, title
        (meas,) = set(re.findall(r'r\._measurement == "([^"]+)"', query))
        named = set(re.findall(r'r\._field == "([^"]+)"', query))
        if named:
            _check_names(title, meas, named, fields)
        for rx in re.findall(r"r\._field =~ /([^/]+)/", query):
            assert any(re.search(rx, f) for f in fields[meas]), (title, rx)


def test_influxql_and_flux_dashboards_show_the_same_panels() -> None:
    a = json.loads((DASHBOARDS / "chikyu-influxql.json").read_text())
    b = json.loads((DASHBOARDS / "chikyu-flux.json").read_text())
    assert [p["title"] for p in a["panels"]] == [p["title"] for p in b["panels"]]
    assert len({a["uid"], b["uid"]}) == 2
