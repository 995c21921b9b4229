"""Checks that span several keys of a config, each reported at the key path a user would edit."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from chikyu_daq.config import params
from chikyu_daq.config.params import alarm_names, base_name
from chikyu_daq.config.rules import (
    ConfigIssue,
    client_id_issue,
    expand,
    topic_prefix_issue,
)

if TYPE_CHECKING:
    from chikyu_daq.config.model import Config
from drivers.spec import AsciiStreamBus, Device, Field_, StreamField
from drivers.spec_checks import (
    MapIssue,
    device_map_issues,
    register_map_issues,
    sentence_map_issues,
)
from dsp.params import ALARM_BY_NAME

#: pyserial URL schemes the stream bus may open; `socket`/`rfc2217` need host:port.
SERIAL_SCHEMES = {"socket", "rfc2217", "loop", "spy"}


def semantic_issues(cfg: Config) -> list[ConfigIssue]:
    issues: list[ConfigIssue] = []
    issues.extend(_bus_issues(cfg))
    issues.extend(_rate_issues(cfg))
    issues.extend(_alarm_issues(cfg))
    issues.extend(_mqtt_issues(cfg))
    for name, regmap in cfg.maps.items():
        issues.extend(_map_issues(register_map_issues(f"maps.{name}", regmap)))
    for name, smap in cfg.sentences.items():
        issues.extend(_map_issues(sentence_map_issues(f"sentences.{name}", smap)))
    issues.extend(_device_issues(cfg))
    channels = set(channel_ids(cfg))
    for role, channel in cfg.roles.model_dump().items():
        if channel is not None and channel not in channels:
            issues.append(
                ConfigIssue(f"roles.{role}", f"channel {channel!r} is not defined by any device")
            )
    issues.extend(_alarm_management_issues(cfg, channels))
    if not issues:
        issues.extend(_estimator_issues(cfg))
    return issues


def _bus_issues(cfg: Config) -> list[ConfigIssue]:
    out = []
    for name, bus in cfg.buses.items():
        p = f"buses.{name}"
        if bus.reconnect_min_s > bus.reconnect_max_s:
            out.append(ConfigIssue(f"{p}.reconnect_max_s", "expected >= reconnect_min_s"))
        if isinstance(bus, AsciiStreamBus):
            problem = _serial_url_issue(bus.url)
            if problem:
                out.append(ConfigIssue(f"{p}.url", problem))
    for dev_id, dev in cfg.devices.items():
        if dev.backoff_min_s > dev.backoff_max_s:
            out.append(ConfigIssue(f"devices.{dev_id}.backoff_max_s", "expected >= backoff_min_s"))
    return out


def _serial_url_issue(url: str) -> str | None:
    """A device path (`/dev/ttyS2`, `COM3`) or a pyserial URL this DAQ can open."""
    if "://" not in url:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        return f"not a URL: {err} (got {url!r})"
    if parts.scheme not in SERIAL_SCHEMES:
        return f"unknown scheme {parts.scheme!r}: expected one of {sorted(SERIAL_SCHEMES)}"
    if parts.scheme in {"socket", "rfc2217"} and (not parts.hostname or not port):
        return f"expected {parts.scheme}://host:port (got {url!r})"
    return None


def _rate_issues(cfg: Config) -> list[ConfigIssue]:
    """Keys of different sections that must agree on the grid rate."""
    st, proc = cfg.stability, cfg.processing
    out = []
    if proc.publish_hz > proc.grid_hz:
        out.append(
            ConfigIssue("processing.publish_hz", f"expected <= grid_hz ({proc.grid_hz:g} Hz)")
        )
    nyquist = 0.5 * proc.grid_hz / st.osc_decim
    if st.osc_f_hi_hz > nyquist:
        out.append(
            ConfigIssue(
                "stability.osc_f_hi_hz",
                f"{st.osc_f_hi_hz:g} Hz is above the Nyquist frequency of the decimated grid "
                f"({nyquist:g} Hz = processing.grid_hz / 2 / stability.osc_decim)",
            )
        )
    return out


def _alarm_issues(cfg: Config) -> list[ConfigIssue]:
    """Thresholds within what each alarm watches, and on the side its direction needs."""
    out = []
    for name, alarm in cfg.alarms.items():
        watched = ALARM_BY_NAME[name]
        direction, lo, hi = watched.direction, watched.lo, watched.hi
        for key in ("raise_at", "clear_at"):
            value = getattr(alarm, key)
            if not lo <= value <= hi:
                out.append(
                    ConfigIssue(
                        f"alarms.{name}.{key}",
                        f"{value:g} is outside what the alarm watches ({lo:g} to {hi:g})",
                    )
                )
        high = alarm.raise_at > alarm.clear_at
        if alarm.raise_at != alarm.clear_at and high != (direction == "high"):
            rel = ">" if direction == "high" else "<"
            out.append(
                ConfigIssue(
                    f"alarms.{name}.clear_at",
                    f"{name} is a {direction} alarm: expected raise_at {rel} clear_at",
                )
            )
    return out


def _mqtt_issues(cfg: Config) -> list[ConfigIssue]:
    """The templates expanded as the publisher expands them, checked as MQTT sees them."""
    mqtt = cfg.outputs.mqtt
    prefix = cfg.mqtt_prefix
    out = []
    problem = topic_prefix_issue(prefix)
    if problem:
        out.append(ConfigIssue("outputs.mqtt.prefix", problem))
    # the publisher fills {vessel} of the client id from the prefix's last level
    vessels = {cfg.site.vessel, prefix.rstrip("/").rsplit("/", 1)[-1]}
    for vessel in sorted(vessels):
        problem = client_id_issue(expand(mqtt.client_id, vessel))
        if problem:
            out.append(ConfigIssue("outputs.mqtt.client_id", problem))
            break
    return out


def _estimator_issues(cfg: Config) -> list[ConfigIssue]:
    """Last line: the estimators' own parameter checks, so nothing they refuse passes here."""
    try:
        params.chain_params(cfg)  # looked up at call time: the check follows the estimators
    except (TypeError, ValueError) as err:
        return [ConfigIssue("stability", f"refused by the estimators: {err}")]
    return []


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


def _map_issues(issues: list[MapIssue]) -> list[ConfigIssue]:
    return [ConfigIssue(i.path, i.message) for i in issues]


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
            out.extend(_map_issues(device_map_issues(dev_id, dev, cfg.maps[dev.map])))
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


def _alarm_management_issues(cfg: Config, channels: set[str]) -> list[ConfigIssue]:
    """`[alarm_management]` keys that name no alarm, channel or device (config check, exit 2)."""
    am = cfg.alarm_management
    names = alarm_names(cfg)
    bases = {base_name(n) for n in names}
    out: list[ConfigIssue] = []
    path = "alarm_management"
    for key in am.priorities:
        if key not in names and key not in bases:
            out.append(ConfigIssue(f"{path}.priorities.{key}", f"no alarm named {key!r}"))
    for i, pattern in enumerate(am.out_of_service):
        if not _matches_any(pattern, names):
            out.append(ConfigIssue(f"{path}.out_of_service[{i}]", f"matches no alarm: {pattern!r}"))
    for i, rule in enumerate(am.suppress):
        for k, pattern in enumerate(rule.alarms):
            if not _matches_any(pattern, names):
                msg = f"matches no alarm: {pattern!r}"
                out.append(ConfigIssue(f"{path}.suppress[{i}].alarms[{k}]", msg))
        for k, cond in enumerate(rule.when):
            if cond.channel not in channels:
                msg = f"channel {cond.channel!r} is not defined by any device"
                out.append(ConfigIssue(f"{path}.suppress[{i}].when[{k}].channel", msg))
    for i, m in enumerate(am.maintenance):
        if m.device not in cfg.devices:
            msg = f"no device {m.device!r}"
            out.append(ConfigIssue(f"{path}.maintenance[{i}].device", msg))
    return out


def _matches_any(pattern: str, names: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(n, pattern) for n in names)
