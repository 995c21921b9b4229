"""Checks that span several keys of a config, each reported at the key path a user would edit."""

from __future__ import annotations

from collections.abc import Iterator

from chikyu_daq.config import Config, ConfigIssue
from drivers.spec import (
    REGISTER_COUNT,
    AsciiStreamBus,
    BitQualityRule,
    Device,
    Field_,
    RegisterMap,
    StreamField,
)


def semantic_issues(cfg: Config) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    for name, regmap in cfg.maps.items():
        issues.extend(_map_issues(f"maps.{name}", regmap))
    for name, smap in cfg.sentences.items():
        names = [f.name for f in smap.fields]
        issues.extend(_duplicates(f"sentences.{name}.fields", names))
        issues.extend(_rule_issues(f"sentences.{name}", smap.quality_rules, set(names)))
    issues.extend(_device_issues(cfg))
    channels = set(channel_ids(cfg))
    for role, channel in cfg.roles.model_dump().items():
        if channel not in channels:
            issues.append(
                ConfigIssue(f"roles.{role}", f"channel {channel!r} is not defined by any device")
            )
    from chikyu_daq.alarms.policy import config_issues as alarm_config_issues

    issues.extend(alarm_config_issues(cfg, channels))
    return issues


def channel_ids(cfg: Config) -> Iterator[str]:
    """Every channel the config produces, `<device>.<name>`, bit channels included."""
    for dev_id, dev in cfg.devices.items():
        fields: list[Field_ | StreamField] = []
        if dev.map in cfg.maps:
            fields.extend(cfg.maps[dev.map].fields)
        if dev.map in cfg.sentences:
            fields.extend(cfg.sentences[dev.map].fields)
        for f in fields:
            yield f"{dev_id}.{f.name}"
            for bit in f.bits.values():
                yield f"{dev_id}.{bit}"


def _duplicates(path: str, names: list[str]) -> list[ConfigIssue]:
    seen: set[str] = set()
    out = []
    for i, n in enumerate(names):
        if n in seen:
            out.append(ConfigIssue(f"{path}[{i}].name", f"duplicate channel name {n!r}"))
        seen.add(n)
    return out


def _rule_issues(path: str, rules: list[BitQualityRule], names: set[str]) -> list[ConfigIssue]:
    out = []
    for i, rule in enumerate(rules):
        for key, ref in [("source", rule.source), *(("applies_to", a) for a in rule.applies_to)]:
            if ref not in names:
                out.append(
                    ConfigIssue(f"{path}.quality_rules[{i}].{key}", f"no field named {ref!r}")
                )
    return out


def _map_issues(path: str, regmap: RegisterMap) -> list[ConfigIssue]:
    out: list[ConfigIssue] = []
    names = [f.name for f in regmap.fields]
    out.extend(_duplicates(f"{path}.fields", names))
    bit_names = [b for f in regmap.fields for b in f.bits.values()]
    for b in bit_names:
        if b in names:
            out.append(ConfigIssue(f"{path}.fields", f"bit name {b!r} collides with a field"))
    out.extend(_duplicates(f"{path}.fields(bits)", bit_names))
    spans: list[tuple[int, int, int, str]] = []
    for i, f in enumerate(regmap.fields):
        fp = f"{path}.fields[{i}]"
        width = REGISTER_COUNT[f.type]
        if f.count is not None and f.count != width:
            out.append(
                ConfigIssue(f"{fp}.count", f"{f.type} occupies {width} registers, not {f.count}")
            )
        if width == 1 and f.word_order is not None:
            out.append(ConfigIssue(f"{fp}.word_order", f"a 16-bit {f.type} has no word order"))
        for bit in f.bits:
            if not 0 <= bit < 16 * width:
                out.append(ConfigIssue(f"{fp}.bits", f"bit {bit} outside a {16 * width}-bit value"))
        if f.analog is not None:
            if f.type not in {"int16", "uint16"}:
                out.append(ConfigIssue(f"{fp}.type", "an analog input is int16 or uint16 counts"))
            if f.analog.eng_max == f.analog.eng_min:
                out.append(ConfigIssue(f"{fp}.analog.eng_max", "must differ from eng_min"))
            if f.analog.counts_at_20ma == f.analog.counts_at_4ma:
                out.append(ConfigIssue(f"{fp}.analog.counts_at_20ma", "must differ from 4 mA"))
        end = f.address + width
        for a0, a1, fc, other in spans:
            if fc == f.function and f.address < a1 and a0 < end:
                out.append(
                    ConfigIssue(
                        f"{fp}.address",
                        f"registers {f.address}-{end - 1} overlap field {other!r} ({a0}-{a1 - 1})",
                    )
                )
        spans.append((f.address, end, f.function, f.name))
    out.extend(_rule_issues(path, regmap.quality_rules, set(names)))
    if regmap.counter is not None:
        for key, ref in [
            ("field", regmap.counter.field),
            *(("applies_to", a) for a in regmap.counter.applies_to),
        ]:
            if ref not in names:
                out.append(ConfigIssue(f"{path}.counter.{key}", f"no field named {ref!r}"))
    return out


def _device_issues(cfg: Config) -> list[ConfigIssue]:
    out: list[ConfigIssue] = []
    units: dict[tuple[str, int], str] = {}
    stream_users: dict[str, str] = {}
    for dev_id, dev in cfg.devices.items():
        p = f"devices.{dev_id}"
        if not dev_id.replace("_", "").isalnum() or not dev_id[0].isalpha():
            out.append(ConfigIssue(p, "device id must be letters, digits and _"))
        bus = cfg.buses.get(dev.bus)
        if bus is None:
            out.append(ConfigIssue(f"{p}.bus", f"bus {dev.bus!r} is not defined under [buses]"))
            continue
        if isinstance(bus, AsciiStreamBus):
            out.extend(_stream_device(cfg, p, dev, stream_users, dev_id))
            continue
        if dev.map not in cfg.maps:
            out.append(ConfigIssue(f"{p}.map", f"register map {dev.map!r} is not defined"))
        else:
            for i, f in enumerate(cfg.maps[dev.map].fields):
                if f.analog is not None and f.address in dev.unwired:
                    out.append(
                        ConfigIssue(
                            f"maps.{dev.map}.fields[{i}].address",
                            f"analog input {f.address} is unwired on device {dev_id!r}",
                        )
                    )
        if dev.unit is None:
            out.append(ConfigIssue(f"{p}.unit", "a Modbus device needs a unit id"))
        elif (dev.bus, dev.unit) in units:
            other = units[(dev.bus, dev.unit)]
            out.append(ConfigIssue(f"{p}.unit", f"unit {dev.unit} already used by {other!r}"))
        else:
            units[(dev.bus, dev.unit)] = dev_id
        if dev.poll_hz is None:
            out.append(ConfigIssue(f"{p}.poll_hz", "a polled device needs a poll rate > 0"))
    return out


def _stream_device(
    cfg: Config, p: str, dev: Device, users: dict[str, str], dev_id: str
) -> list[ConfigIssue]:
    out = []
    if dev.map not in cfg.sentences:
        out.append(ConfigIssue(f"{p}.map", f"sentence map {dev.map!r} is not defined"))
    if dev.bus in users:
        out.append(ConfigIssue(f"{p}.bus", f"stream bus already read by {users[dev.bus]!r}"))
    users[dev.bus] = dev_id
    return out
