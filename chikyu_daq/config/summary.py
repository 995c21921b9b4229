"""Readable summary of a validated config: what a field engineer checks before going live."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from chikyu_daq.config.model import Config
from drivers.spec import AsciiStreamBus, ModbusRtuSerialBus, ModbusRtuTcpBus, ModbusTcpBus


def _endpoint(bus: object) -> str:
    if isinstance(bus, ModbusTcpBus):
        return f"Modbus TCP {bus.host}:{bus.port}"
    if isinstance(bus, ModbusRtuTcpBus):
        return f"Modbus RTU over TCP {bus.host}:{bus.port}"
    if isinstance(bus, ModbusRtuSerialBus):
        line = f"{bus.baudrate} {bus.bytesize}{bus.parity}{bus.stopbits}"
        return f"Modbus RTU {bus.device} {line}"
    if isinstance(bus, AsciiStreamBus):
        return f"ASCII stream {bus.url} {bus.baudrate} {bus.bytesize}{bus.parity}{bus.stopbits}"
    return "?"


def print_summary(cfg: Config, file: str) -> None:
    console = Console(width=140, highlight=False)
    console.print(
        f"[bold]{file}[/bold]: OK — vessel {cfg.site.vessel}, data in {cfg.site.data_dir}"
    )
    console.print(
        f"grid {cfg.processing.grid_hz:g} Hz ({cfg.processing.align}), publish "
        f"{cfg.processing.publish_hz:g} Hz, max gap {cfg.processing.max_gap_s:g} s"
    )
    buses = Table(title="Buses", title_justify="left")
    for col in ("bus", "endpoint", "devices"):
        buses.add_column(col)
    for name, bus in cfg.buses.items():
        devs = [d for d, dev in cfg.devices.items() if dev.bus == name]
        buses.add_row(name, _endpoint(bus), ", ".join(devs))
    console.print(buses)
    chans = Table(title="Channels", title_justify="left")
    for col in (
        "channel",
        "tag",
        "unit id",
        "fc",
        "address",
        "type",
        "order",
        "scale",
        "unit",
        "rate",
    ):
        chans.add_column(col)
    n = 0
    for dev_id, dev in cfg.devices.items():
        rate = f"{dev.poll_hz:g} Hz" if dev.poll_hz else "device-paced"
        if dev.map in cfg.maps:
            for f in cfg.maps[dev.map].fields:
                scale = f"{f.scale:g}" + (f"{f.offset:+g}" if f.offset else "")
                if f.analog:
                    scale = f"4-20 mA → {f.analog.eng_min:g}..{f.analog.eng_max:g}"
                chans.add_row(
                    f"{dev_id}.{f.name}",
                    dev.tag,
                    str(dev.unit),
                    str(f.function),
                    f"{f.address}" + (f"-{f.address + f.registers - 1}" if f.registers > 1 else ""),
                    f.type,
                    f.word_order or "",
                    scale,
                    f.unit,
                    rate,
                )
                n += 1
                n += len(f.bits)
        else:
            for sf in cfg.sentences[dev.map].fields:
                chans.add_row(
                    f"{dev_id}.{sf.name}",
                    dev.tag,
                    "",
                    "",
                    f"${cfg.sentences[dev.map].tag}[{sf.position}]",
                    sf.format,
                    "",
                    "",
                    sf.unit,
                    rate,
                )
                n += 1 + len(sf.bits)
    console.print(chans)
    console.print(f"{len(cfg.devices)} devices, {n} channels (status bits included)")
    out = cfg.outputs
    influx = (
        f"InfluxDB {out.influx.dialect} {out.influx.url}" if out.influx.enabled else "InfluxDB off"
    )
    mqtt = (
        f"MQTT {out.mqtt.host}:{out.mqtt.port} prefix {cfg.mqtt_prefix}"
        if out.mqtt.enabled
        else "MQTT off"
    )
    rec = f"recorder {'on' if cfg.recorder.enabled else 'off'}"
    console.print(f"outputs: {rec}; {influx}; {mqtt}")
    alarms = ", ".join(
        f"{k} ({'>' if a.raise_at > a.clear_at else '<'}{a.raise_at:g})"
        for k, a in cfg.alarms.items()
    )
    console.print(f"alarms: {alarms or 'none'}")
