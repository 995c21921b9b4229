"""Dotted-key config overrides (`physics.rho_s_kg_m3=2500`), validated like a config file."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping
from typing import Any

from chikyu_daq.config.model import Config, ConfigError, ConfigIssue, parse_config
from chikyu_daq.fleet.runs import FleetError


def parse_value(text: str) -> Any:
    """A JSON literal (2500, 0.5, true, "x") or else the bare text."""
    try:
        return json.loads(text)
    except ValueError:
        return text.strip()


def parse_set(spec: str) -> tuple[str, list[Any]]:
    """`section.key=v1,v2,...` → (key, [v1, v2, ...])."""
    key, sep, values = spec.partition("=")
    key = key.strip()
    if not sep or not key or not values.strip():
        raise FleetError(f"--set expects KEY=V1[,V2...], got {spec!r}")
    return key, [parse_value(v) for v in values.split(",")]


def grid(sets: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
    """Cartesian product of the `--set` values, as one override dict per case."""
    keys = [k for k, _ in sets]
    if len(set(keys)) != len(keys):
        raise FleetError(f"a key is given twice in --set: {keys}")
    return [
        dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(v for _, v in sets))
    ]


def apply(base: Mapping[str, Any], overrides: Mapping[str, Any], file: str = "--set") -> Config:
    """`base` (a config as JSON-able dict) with dotted keys replaced, then validated.

    A key that does not exist is an error naming it (a typo must not silently sweep nothing)."""
    data = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        node: Any = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(file, [ConfigIssue(key, "no such config key")])
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            raise ConfigError(file, [ConfigIssue(key, "no such config key")])
        node[parts[-1]] = value
    return parse_config(data, file)
