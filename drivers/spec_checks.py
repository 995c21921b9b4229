"""Checks of register and sentence maps that span several fields, beside the maps they check.

One place for them: the config check (`chikyu_daq.config.checks`) reports every issue at the
key path a user would edit, and `regmap.compile_device` refuses a map whose rules or inputs it
could not bind (`check_device`). Single-field limits are the models' own (`drivers.spec`).
"""

from __future__ import annotations

from typing import NamedTuple

from drivers.spec import REGISTER_COUNT, BitQualityRule, Device, RegisterMap, SentenceMap

__all__ = [
    "MIN_ABS_SCALE",
    "MapIssue",
    "check_device",
    "device_map_issues",
    "register_map_issues",
    "sentence_map_issues",
]

#: |scale| below this turns every reading into 0 (or denormal noise).
MIN_ABS_SCALE = 1e-12


class MapIssue(NamedTuple):
    """One thing wrong with a map, at the key path a user would edit."""

    path: str
    message: str


def _duplicates(path: str, names: list[str]) -> list[MapIssue]:
    seen: set[str] = set()
    out = []
    for i, n in enumerate(names):
        if n in seen:
            out.append(MapIssue(f"{path}[{i}].name", f"duplicate channel name {n!r}"))
        seen.add(n)
    return out


def _references(path: str, refs: list[tuple[str, str]], names: set[str]) -> list[MapIssue]:
    """``(key, field name)`` pairs under ``path`` that name no field of the map."""
    return [
        MapIssue(f"{path}.{key}", f"no field named {ref!r}")
        for key, ref in refs
        if ref not in names
    ]


def _rule_issues(path: str, rules: list[BitQualityRule], names: set[str]) -> list[MapIssue]:
    out = []
    for i, rule in enumerate(rules):
        refs = [("source", rule.source), *(("applies_to", a) for a in rule.applies_to)]
        out.extend(_references(f"{path}.quality_rules[{i}]", refs, names))
    return out


def _counter_issues(path: str, regmap: RegisterMap, names: set[str]) -> list[MapIssue]:
    c = regmap.counter
    if c is None:
        return []
    refs = [("field", c.field), *(("applies_to", a) for a in c.applies_to)]
    return _references(f"{path}.counter", refs, names)


def register_map_issues(path: str, regmap: RegisterMap) -> list[MapIssue]:
    """Names unique (bits included), widths, word orders, bits, addresses, scales, analog
    inputs, overlapping registers, and every rule and counter naming a field of the map."""
    out: list[MapIssue] = []
    names = [f.name for f in regmap.fields]
    out.extend(_duplicates(f"{path}.fields", names))
    bit_names = [b for f in regmap.fields for b in f.bits.values()]
    for b in bit_names:
        if b in names:
            out.append(MapIssue(f"{path}.fields", f"bit name {b!r} collides with a field"))
    out.extend(_duplicates(f"{path}.fields(bits)", bit_names))
    spans: list[tuple[int, int, int, str]] = []
    for i, f in enumerate(regmap.fields):
        fp = f"{path}.fields[{i}]"
        width = REGISTER_COUNT[f.type]
        if f.count is not None and f.count != width:
            out.append(
                MapIssue(f"{fp}.count", f"{f.type} occupies {width} registers, not {f.count}")
            )
        if width == 1 and f.word_order is not None:
            out.append(MapIssue(f"{fp}.word_order", f"a 16-bit {f.type} has no word order"))
        for bit in f.bits:
            if not 0 <= bit < 16 * width:
                out.append(MapIssue(f"{fp}.bits", f"bit {bit} outside a {16 * width}-bit value"))
        if f.address + width > 65536:
            out.append(MapIssue(f"{fp}.address", f"a {f.type} at {f.address} runs past 65535"))
        if abs(f.scale) < MIN_ABS_SCALE:
            out.append(MapIssue(f"{fp}.scale", f"|scale| must be >= {MIN_ABS_SCALE:g}"))
        if f.analog is not None:
            if f.type not in {"int16", "uint16"}:
                out.append(MapIssue(f"{fp}.type", "an analog input is int16 or uint16 counts"))
            if not f.analog.eng_max > f.analog.eng_min:
                out.append(MapIssue(f"{fp}.analog.eng_max", "must be above eng_min"))
            if f.analog.counts_at_20ma == f.analog.counts_at_4ma:
                out.append(MapIssue(f"{fp}.analog.counts_at_20ma", "must differ from 4 mA"))
        end = f.address + width
        for a0, a1, fc, other in spans:
            if fc == f.function and f.address < a1 and a0 < end:
                out.append(
                    MapIssue(
                        f"{fp}.address",
                        f"registers {f.address}-{end - 1} overlap field {other!r} ({a0}-{a1 - 1})",
                    )
                )
        spans.append((f.address, end, f.function, f.name))
    out.extend(_rule_issues(path, regmap.quality_rules, set(names)))
    out.extend(_counter_issues(path, regmap, set(names)))
    return out


def sentence_map_issues(path: str, smap: SentenceMap) -> list[MapIssue]:
    """Names unique and every quality rule naming a field of the sentence."""
    names = [f.name for f in smap.fields]
    return _duplicates(f"{path}.fields", names) + _rule_issues(path, smap.quality_rules, set(names))


def device_map_issues(device_id: str, device: Device, regmap: RegisterMap) -> list[MapIssue]:
    """What a device adds to its map: no analog field on an input it leaves unwired."""
    return [
        MapIssue(
            f"maps.{device.map}.fields[{i}].address",
            f"analog input {f.address} is unwired on device {device_id!r}",
        )
        for i, f in enumerate(regmap.fields)
        if f.analog is not None and f.address in device.unwired
    ]


def check_device(device_id: str, device: Device, regmap: RegisterMap) -> None:
    """Raise ValueError naming the first thing `compile_device` could not bind: an analog
    field on an unwired input, a quality rule or counter naming no field."""
    path = f"maps.{device.map}"
    names = {f.name for f in regmap.fields}
    issues = [
        *device_map_issues(device_id, device, regmap),
        *_rule_issues(path, regmap.quality_rules, names),
        *_counter_issues(path, regmap, names),
    ]
    if issues:
        raise ValueError(f"{device_id}: {issues[0].path}: {issues[0].message}")
