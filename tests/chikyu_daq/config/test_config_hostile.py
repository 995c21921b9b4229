"""Hostile config values: every one is refused at load, naming the file and the key path, with
exit 2 and no traceback from `config check` and from the daemon. Before these checks most of
them passed `config check` and then crashed the daemon at start (nan thresholds, inf rates,
a 10**12-point filter window), or crashed `config check` itself (an unknown placeholder)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chikyu_daq.config.model import ConfigError, load_config, parse_config
from chikyu_daq.rig.session import scenario_config
from hil.scenario import list_scenarios, load_scenario
from tests.chikyu_daq.config.test_config import (
    REFERENCE,
    REPO,
    Case,
    Edit,
    after,
    inside,
    load_toml,
    run_check,
    sub,
)

SPEED = '{ name = "speed", address = 1, function = 3, type = "int16", unit = "rpm" }'
CURRENT_SCALE = 'scale = 0.1, unit = "A"'
PT101_RANGE = "eng_min = 0.0, eng_max = 250.0"
SHAFT_AT = 'name = "shaft_power", address = 4'


def literal(value: object) -> str:
    """`value` written as TOML (basic-string escapes are a subset of JSON's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def setkey(section: str, key: str, value: object) -> Edit:
    """Set `key` of table `[section]` in the reference text (replaced, or added under it)."""

    def edit(text: str) -> str:
        lines = text.split("\n")
        heads = [i for i, ln in enumerate(lines) if ln.split("#")[0].strip() == f"[{section}]"]
        assert len(heads) == 1, f"fixture drift: no unique [{section}] in reference.toml"
        end = next((j for j in range(heads[0] + 1, len(lines)) if lines[j].startswith("[")), None)
        body = range(heads[0] + 1, end if end is not None else len(lines))
        line = f"{key} = {literal(value)}"
        hits = [j for j in body if lines[j].split("=")[0].strip() == key]
        if hits:
            lines[hits[0]] = line
        else:
            lines.insert(heads[0] + 1, line)
        return "\n".join(lines)

    return edit


def refused(case: str, section: str, key: str, value: object, path: str = "") -> Case:
    """`key` of `[section]` set to `value`; the message must name `section.key`, or `path` where
    the check blames another key or says more."""
    return (case, setkey(section, key, value), path or f"{section}.{key}")


def whole(content: bytes) -> Edit:
    """Replace the whole file (for bytes that are not a TOML document at all)."""

    def edit(_: str) -> str:
        return content.decode("latin-1")

    return edit


def also(*edits: Edit) -> Edit:
    def edit(text: str) -> str:
        for e in edits:
            text = e(text)
        return text

    return edit


NAN, INF = math.nan, math.inf
MQTT_ON = setkey("outputs.mqtt", "enabled", True)

#: The `refused` rows as data: `[section] case_id = [key, value(, what the message names)]`.
VALUES = Path(__file__).with_name("hostile_values.toml")


def table_cases(path: Path) -> list[Case]:
    doc = load_toml(path)
    return [
        refused(case, section, *row) for section, rows in doc.items() for case, row in rows.items()
    ]


# (case id, edit of the reference text, the key path the message must name): the table's rows,
# and here the values TOML cannot hold or that need more than one key set
CASES: list[Case] = [
    *table_cases(VALUES),
    refused("grid_hz_huge_int", "processing", "grid_hz", 10**400),
    refused("hampel_window_1e100", "stability", "hampel_window", 10**100),
    refused("unit_huge", "devices.ai20", "unit", 10**30),
    refused("prefix_65k", "outputs.mqtt", "prefix", "a" * 70_000),
    refused("client_id_long", "outputs.mqtt", "client_id", "d" * 500),
    refused("vessel_long", "site", "vessel", "v" * 200),
    (
        "prefix_ship",  # issue 10
        also(MQTT_ON, setkey("outputs.mqtt", "prefix", "chikyu/{ship}")),
        "outputs.mqtt.prefix",
    ),
    (
        "physics_not_a_table",
        also(sub("[physics]\n", "[physics_gone]\n"), lambda t: "physics = 5\n" + t),
        "physics: Input should be a valid dictionary",
    ),
    (
        "deposition_as_high_alarm",
        also(
            setkey("alarms.DEPOSITION_RISK", "raise_at", 1.2),
            setkey("alarms.DEPOSITION_RISK", "clear_at", 1.1),
        ),
        "alarms.DEPOSITION_RISK.clear_at",
    ),
    # -- register maps and sentences: edits of the reference text (issue 10 reported scale_nan,
    # offset_minus_inf and eng_max_nan) ------------------------------------------------------
    ("scale_nan", inside(CURRENT_SCALE, "0.1", "nan"), "maps.pump_drive.fields[2].scale"),
    ("scale_zero", inside(CURRENT_SCALE, "0.1", "0.0"), "maps.pump_drive.fields[2].scale"),
    ("scale_1e300", inside(CURRENT_SCALE, "0.1", "1e300"), "maps.pump_drive.fields[2].scale"),
    (
        "offset_minus_inf",
        inside(SPEED, ' unit = "rpm"', ' unit = "rpm", offset = -inf'),
        "maps.pump_drive.fields[1].offset",
    ),
    ("address_past_end", inside(SHAFT_AT, "4", "65535"), "maps.pump_drive.fields[4].address"),
    *(
        (case, sub(PT101_RANGE, text), f"maps.analog_inputs.fields[0].analog.{key}")
        for case, text, key in [
            ("eng_max_nan", "eng_min = 0.0, eng_max = nan", "eng_max"),
            ("eng_range_reversed", "eng_min = 250.0, eng_max = 0.0", "eng_max"),
            ("eng_min_minus_inf", "eng_min = -inf, eng_max = 250.0", "eng_min"),
            ("counts_at_20ma_huge", PT101_RANGE + ", counts_at_20ma = 1000000", "counts_at_20ma"),
        ]
    ),
    (
        "sentence_position_huge",
        sub('name = "density", position = 1', 'name = "density", position = 1000000000'),
        "sentences.pdns.fields[1].position",
    ),
    (
        "counter_stale_inf",
        sub("stale_after_s = 0.5", "stale_after_s = inf"),
        "maps.quartz_transmitter.counter.stale_after_s",
    ),
    # -- files that are not a config at all -----------------------------------------------------
    ("not_utf8", whole(b"\xff\xfe[site]\n"), "<top level>: not UTF-8"),
    ("int_5000_digits", whole(b"[site]\nvessel = " + b"9" * 5000), "<top level>: TOML value"),
    ("nested_5000_deep", whole(b"a = " + b"[" * 5000 + b"]" * 5000), "<top level>: TOML nested"),
    ("two_megabytes", after("[site]", "#" + "x" * (2 << 20)), "<top level>: larger than"),
    ("empty_file", whole(b""), "site: required key is missing"),
]

#: Run through the real CLI (a subprocess each, ~1 s): the item-5 crash and a spread of kinds.
CLI_CASES = {
    "prefix_ship",
    "grid_hz_inf",
    "hampel_window_1e12",
    "raise_at_nan",
    "client_id_ship",
    "eng_max_nan",
    "nested_5000_deep",
    "not_utf8",
}


#: Cases whose edit produces raw bytes (carried as latin-1 text to keep them byte for byte).
RAW = {"not_utf8", "int_5000_digits", "nested_5000_deep", "empty_file"}


def write_case(tmp_path: Path, case: str, edit: Edit) -> Path:
    bad = tmp_path / "bad.toml"
    text = edit(REFERENCE)
    bad.write_bytes(text.encode("latin-1") if case in RAW else text.encode("utf-8"))
    return bad


@pytest.mark.parametrize(("case", "edit", "key"), CASES, ids=[c[0] for c in CASES])
def test_hostile_value_is_refused_naming_the_key(
    tmp_path: Path, case: str, edit: Edit, key: str
) -> None:
    bad = write_case(tmp_path, case, edit)
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    lines = [issue.format(str(bad)) for issue in err.value.issues]
    assert any(line.startswith(f"{bad}: {key}") for line in lines), lines
    assert all(line.startswith(str(bad)) for line in lines), lines
    assert all(len(line) < 600 for line in lines), "messages quote values, not whole files"


@pytest.mark.parametrize(
    ("case", "edit", "key"),
    [c for c in CASES if c[0] in CLI_CASES],
    ids=[c[0] for c in CASES if c[0] in CLI_CASES],
)
def test_config_check_exits_2_without_traceback(
    tmp_path: Path, case: str, edit: Edit, key: str
) -> None:
    bad = write_case(tmp_path, case, edit)
    res = run_check(bad)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    assert f"error: {bad}: {key}" in res.stderr, res.stderr


def test_daemon_exits_2_on_a_hostile_config(tmp_path: Path) -> None:
    """`run` loads through the same path: exit 2 before anything starts, no run directory."""
    bad = tmp_path / "bad.toml"
    edit = also(setkey("outputs.mqtt", "prefix", "chikyu/{ship}"), setkey("site", "data_dir", "d"))
    bad.write_text(also(edit, setkey("processing", "grid_hz", INF))(REFERENCE))
    res = subprocess.run(
        [sys.executable, "-m", "chikyu_daq", "run", "-c", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    assert f"{bad}: processing.grid_hz" in res.stderr
    assert f"{bad}: outputs.mqtt.prefix" in res.stderr
    assert not (tmp_path / "d").exists()


# Values at the edge of each range, and spellings a real site may use, stay valid.
ACCEPTED: list[tuple[str, Edit]] = [
    ("grid_hz_100", setkey("processing", "grid_hz", 100.0)),
    ("poll_hz_1000", setkey("devices.ai20", "poll_hz", 1000.0)),
    ("hampel_window_max", setkey("stability", "hampel_window", 6001)),
    ("osc_n_fft_max", setkey("stability", "osc_n_fft", 65536)),
    ("keepalive_hour", setkey("outputs.mqtt", "keepalive_s", 3600)),
    ("spool_16mb", setkey("outputs.influx", "spool_quota_mb", 16)),
    ("segment_10s", setkey("recorder", "segment_s", 10.0)),
    ("prefix_levels", also(MQTT_ON, setkey("outputs.mqtt", "prefix", "jamstec/{vessel}/daq"))),
    ("prefix_literal_braces", setkey("outputs.mqtt", "prefix", "ship/{{x}}/{vessel}")),
    ("influx_https_path", setkey("outputs.influx", "url", "https://db.topside:8443/influx")),
    ("influx_ipv6", setkey("outputs.influx", "url", "http://[fd00::5]:8086")),
    ("stream_device_path", setkey("buses.densitometer", "url", "/dev/ttyS2")),
    ("rho_s_magnetite", setkey("physics", "rho_s_kg_m3", 5200.0)),
    ("int_for_float", setkey("processing", "grid_hz", 10)),
    ("multiline_description", setkey("site", "description", "Chikyu\nexpedition 905\tDAQ")),
]


@pytest.mark.parametrize(("case", "edit"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_plausible_values_stay_valid(tmp_path: Path, case: str, edit: Edit) -> None:
    good = tmp_path / "good.toml"
    good.write_text(edit(REFERENCE))
    load_config(good)


def test_every_scenario_config_stays_valid() -> None:
    """The HIL builds its configs by copying scenario physics into the reference one (no
    validation on that path); each, at CI and at full scale, must pass the checks too."""
    for name in list_scenarios():
        for sc in (load_scenario(name), load_scenario(name).at_full_scale()):
            parse_config(scenario_config(sc).model_dump(mode="json"), f"{name}.toml")


def test_what_the_estimators_refuse_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Last line of defence: a parameter check added to dsp later, and not yet mirrored here,
    still makes `config check` exit 2 instead of the daemon dying at start."""

    def refuse(*_: object, **__: object) -> None:
        raise ValueError("a new kernel constraint")

    monkeypatch.setattr("chikyu_daq.config.params.chain_params", refuse)
    with pytest.raises(ConfigError, match="stability: refused by the estimators: a new kernel"):
        load_config(REPO / "config" / "reference.toml")


def test_case_count() -> None:
    assert len(CASES) >= 100 and {c[0] for c in CASES} >= CLI_CASES
