"""Config validation: the reference installation loads; every malformed variant exits 2, names
the offending key, and prints no traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from chikyu_daq.config import load_config
from chikyu_daq.config_checks import channel_ids

REPO = Path(__file__).resolve().parents[2]
REFERENCE = (REPO / "config" / "reference.toml").read_text()

Edit = Callable[[str], str]


def sub(old: str, new: str) -> Edit:
    def edit(text: str) -> str:
        assert text.count(old) == 1, f"fixture drift: {old!r} is not unique in reference.toml"
        return text.replace(old, new)

    return edit


def after(anchor: str, extra: str) -> Edit:
    return sub(anchor, anchor + "\n" + extra)


P101A = "[devices.p101a]"
SHAFT = 'name = "shaft_power", address = 4, function = 3, type = "float32", word_order = "ABCD"'
SPEED = '{ name = "speed", address = 1, function = 3, type = "int16", unit = "rpm" }'
VELOCITY = 'name = "velocity", address = 2'
TT201 = "analog = { eng_min = 0.0, eng_max = 50.0 } },"

# (case id, edit of the reference text, fragment the message must contain)
CASES: list[tuple[str, Edit, str]] = [
    ("toml_syntax", after(P101A, "poll_hz = [5.0"), "TOML syntax error"),
    ("toml_duplicate_key", after(P101A, "unit = 1"), "TOML syntax error"),
    ("unknown_top_level", sub("[processing]", "[procesing]"), "procesing: unknown key"),
    ("unknown_device_key", after(P101A, 'colour = "red"'), "devices.p101a.colour: unknown key"),
    ("wrong_type_rate", sub("poll_hz = 50.0", 'poll_hz = "fast"'), "devices.ai20.poll_hz"),
    ("zero_rate", sub("poll_hz = 50.0", "poll_hz = 0"), "devices.ai20.poll_hz"),
    ("negative_grid", sub("grid_hz = 10.0", "grid_hz = -10.0"), "processing.grid_hz"),
    (
        "duplicate_channel",
        sub('name = "velocity"', 'name = "volume_flow"'),
        "maps.flowmeter.fields[1].name",
    ),
    (
        "overlap",
        sub(VELOCITY, 'name = "velocity", address = 1'),
        "maps.flowmeter.fields[1].address",
    ),
    ("count_mismatch", sub(SHAFT, SHAFT + ", count = 1"), "maps.pump_drive.fields[4].count"),
    (
        "word_order_16bit",
        sub(SPEED, SPEED.replace('"int16"', '"int16", word_order = "ABCD"')),
        "maps.pump_drive.fields[1].word_order",
    ),
    (
        "bad_word_order",
        sub(SHAFT, SHAFT.replace('"ABCD"', '"ABDC"')),
        "maps.pump_drive.fields[4].word_order",
    ),
    (
        "bad_type",
        sub(SHAFT, SHAFT.replace('"float32"', '"float16"')),
        "maps.pump_drive.fields[4].type",
    ),
    (
        "write_function_code",
        sub(SPEED, SPEED.replace("function = 3", "function = 6")),
        "maps.pump_drive.fields[1].function",
    ),
    (
        "undefined_bus",
        sub('bus = "topside"\nunit = 12', 'bus = "topsde"\nunit = 12'),
        "devices.ft201.bus",
    ),
    (
        "undefined_map",
        sub('unit = 20\nmap = "analog_inputs"', 'unit = 20\nmap = "analog"'),
        "devices.ai20.map",
    ),
    (
        "undefined_role_channel",
        sub('q_return = "ft201.volume_flow"', 'q_return = "ft301.volume_flow"'),
        "roles.q_return",
    ),
    (
        "unwired_analog",
        after(
            TT201,
            '  { name = "spare3", address = 3, function = 4, type = "int16", analog = { eng_min = 0.0, eng_max = 1.0 } },',
        ),
        "maps.analog_inputs.fields[3].address",
    ),
    ("duplicate_unit", sub("unit = 12", "unit = 11"), "devices.ft201.unit"),
    ("missing_vessel", sub('vessel = "chikyu"', ""), "site.vessel: required key is missing"),
    (
        "missing_unit_id",
        sub('bus = "topside"\nunit = 1\n', 'bus = "topside"\n'),
        "devices.p101a.unit",
    ),
    (
        "hysteresis",
        sub("raise_at = 1.1\nclear_at = 1.2", "raise_at = 1.1\nclear_at = 1.1"),
        "alarms.DEPOSITION_RISK",
    ),
    (
        "unknown_alarm",
        sub("[alarms.SLUGGING]", "[alarms.SLUGING]"),
        "alarms.SLUGING: Input should be",
    ),
    (
        "unknown_transport",
        sub('transport = "modbus_tcp"', 'transport = "modbus_udp"'),
        "buses.topside",
    ),
    ("port_range", sub("port = 502", "port = 70000"), "buses.topside.port"),
    ("density_order", sub("rho_b_kg_m3 = 1300.0", "rho_b_kg_m3 = 3000.0"), "physics"),
    (
        "rule_unknown_field",
        sub('applies_to = ["volume_flow", "velocity"] }', 'applies_to = ["volume_flo"] }'),
        "maps.flowmeter.quality_rules[0].applies_to",
    ),
    (
        "bit_outside_word",
        sub('bits = { 0 = "ready"', 'bits = { 16 = "ready"'),
        "maps.pump_drive.fields[0].bits",
    ),
    ("influx_v2_without_bucket", lambda t: t, "outputs.influx"),
    (
        "max_registers",
        after(P101A, "workarounds = { max_registers_per_request = 200 }"),
        "devices.p101a.workarounds.max_registers_per_request",
    ),
    (
        "second_stream_reader",
        after("[devices.dt201]", 'bus = "densitometer"\nmap = "pdns"\n[devices.dt202]'),
        "devices.dt202.bus",
    ),
    (
        "analog_on_float",
        sub(
            '"int16", unit = "degC", description = "return slurry temperature"',
            '"float32", unit = "degC", description = "return slurry temperature"',
        ),
        "maps.analog_inputs.fields[2]",
    ),
    (
        "counter_unknown_field",
        sub('counter = { field = "sample_counter"', 'counter = { field = "sample_count"'),
        "maps.quartz_transmitter.counter.field",
    ),
]


CASES += [
    (
        "influx_ca_on_http",
        after('token_file = "influx-token"', 'ca_file = "/etc/ssl/ship-ca.pem"'),
        "outputs.influx: ca_file is set but url is not https://",
    ),
    (
        "mqtt_ca_without_tls",
        after('password_file = "mqtt-password"', 'ca_file = "/etc/ssl/ship-ca.pem"'),
        "outputs.mqtt: ca_file is set but tls = false",
    ),
]


def _influx_bucket_edit(text: str) -> str:
    text = sub('enabled = false\ndialect = "v2"', 'enabled = true\ndialect = "v2"')(text)
    return sub('bucket = "chikyu"\n', "")(text)


CASES = [
    (c[0], _influx_bucket_edit, c[2]) if c[0] == "influx_v2_without_bucket" else c for c in CASES
]


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chikyu_daq", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_reference_config_describes_the_icd() -> None:
    cfg = load_config(REPO / "config" / "reference.toml")
    assert set(cfg.devices) == {
        "p101a",
        "p101b",
        "ft101",
        "ft201",
        "ai20",
        "pt301",
        "pt302",
        "pt303",
        "dt201",
    }
    units = {d: cfg.devices[d].unit for d in cfg.devices}
    assert units == {
        "p101a": 1,
        "p101b": 2,
        "ft101": 11,
        "ft201": 12,
        "ai20": 20,
        "pt301": 31,
        "pt302": 32,
        "pt303": 33,
        "dt201": None,
    }
    pump = {
        f.name: (f.address, f.function, f.type, f.word_order, f.scale)
        for f in cfg.maps["pump_drive"].fields
    }
    assert pump["shaft_power"] == (4, 3, "float32", "ABCD", 1.0)
    assert pump["run_hours"] == (8, 3, "uint32", "CDAB", 0.1)
    assert pump["torque"] == (3, 3, "int16", None, 0.1)
    flow = {
        f.name: (f.address, f.function, f.type, f.word_order) for f in cfg.maps["flowmeter"].fields
    }
    assert flow["volume_flow"] == (0, 4, "float32", "CDAB")
    assert flow["totalizer"] == (4, 4, "float64", "ABCD")
    assert cfg.maps["flowmeter"].fields[4].scale == 10.0
    quartz = {
        f.name: (f.address, f.type, f.word_order) for f in cfg.maps["quartz_transmitter"].fields
    }
    assert quartz == {
        "pressure": (0, "float32", "ABCD"),
        "temperature": (2, "int16", None),
        "status": (3, "uint16", None),
        "sample_counter": (4, "uint32", "ABCD"),
    }
    ai = {
        f.name: (f.address, f.analog.eng_max if f.analog else None)
        for f in cfg.maps["analog_inputs"].fields
    }
    assert ai == {"pt101": (0, 250.0), "pt201": (1, 25.0), "tt201": (2, 50.0)}
    rates = {d: cfg.devices[d].poll_hz for d in cfg.devices}
    assert (
        rates["ai20"] == 50.0
        and rates["ft201"] == 10.0
        and rates["p101a"] == 5.0
        and rates["pt302"] == 10.0
    )
    ids = set(channel_ids(cfg))
    assert {"ft201.empty_pipe", "dt201.hold", "pt301.sample_counter", "p101b.at_speed"} <= ids


def test_config_check_summarises_reference() -> None:
    res = run_check(REPO / "config" / "reference.toml")
    assert res.returncode == 0, res.stderr
    for text in (
        "p101a.shaft_power",
        "CDAB",
        "ft201.volume_flow",
        "m3/h",
        "50 Hz",
        "dt201.density",
        "9 devices",
    ):
        assert text in res.stdout


@pytest.mark.parametrize(("case", "edit", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_malformed_config_names_key(tmp_path: Path, case: str, edit: Edit, fragment: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(edit(REFERENCE))
    res = run_check(bad)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    assert str(bad) in res.stderr
    assert fragment in res.stderr, res.stderr


def test_toml_syntax_error_gives_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    text = REFERENCE.replace("[devices.p101a]", "[devices.p101a]\npoll_hz = [5.0", 1)
    bad.write_text(text)
    line = text.splitlines().index("poll_hz = [5.0") + 1
    res = run_check(bad)
    assert res.returncode == 2
    assert f"{bad}:{line}" in res.stderr or f"{bad}:{line + 1}" in res.stderr, res.stderr


def test_missing_file(tmp_path: Path) -> None:
    res = run_check(tmp_path / "nope.toml")
    assert (
        res.returncode == 2 and "cannot read file" in res.stderr and "Traceback" not in res.stderr
    )


def test_case_count() -> None:
    assert len(CASES) >= 25
