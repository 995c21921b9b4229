"""The whole installation's emulators from one config, on loopback, in one context manager.

    async with Rig(cfg, source=ConstantSource()) as rig:
        rig.endpoints          # {"topside": "127.0.0.1:40123", "subsea": ..., "densitometer": "socket://..."}
        rig.set_fault("pt302", "no_reply")

One emulator per bus, built from the config's maps and devices (duck-typed: `.buses`, `.maps`,
`.sentences`, `.devices`). A bus's `mode` is TCP unless told "pty"; serial buses default to a
pseudo-terminal. `drivers.endpoints.override_buses(cfg.buses, rig.endpoints)` points drivers here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.spec import AsciiStreamBus, ModbusRtuSerialBus, ModbusRtuTcpBus, ModbusTcpBus
from hil.emulators.densitometer import DensitometerEmulator
from hil.emulators.links import Mode
from hil.emulators.modbus import ModbusGatewayEmulator, RtuBusEmulator
from hil.emulators.source import ConstantSource, ValueSource
from hil.emulators.unit import PROFILES, EmulatedUnit

Emulator = ModbusGatewayEmulator | RtuBusEmulator | DensitometerEmulator


class Rig:
    def __init__(
        self,
        cfg: Any,
        *,
        source: ValueSource | None = None,
        ports: Mapping[str, int] | None = None,
        modes: Mapping[str, Mode] | None = None,
        host: str = "127.0.0.1",
        densitometer_period_s: float = 0.5,
    ) -> None:
        self.source = source if source is not None else ConstantSource()
        self.emulators: dict[str, Emulator] = {}
        self.device_bus: dict[str, str] = {}
        ports = ports or {}
        modes = modes or {}
        for bus_id, bus in cfg.buses.items():
            dev_ids = [d for d, dev in cfg.devices.items() if dev.bus == bus_id]
            if not dev_ids:
                continue
            for d in dev_ids:
                self.device_bus[d] = bus_id
            port = ports.get(bus_id, 0)
            if isinstance(bus, AsciiStreamBus):
                mode = modes.get(bus_id, "tcp" if bus.url.startswith("socket://") else "pty")
                (dev_id,) = dev_ids
                smap = cfg.sentences[cfg.devices[dev_id].map]
                self.emulators[bus_id] = DensitometerEmulator(
                    dev_id,
                    smap,
                    self.source,
                    mode=mode,
                    host=host,
                    port=port,
                    period_s=densitometer_period_s,
                )
                continue
            units = [
                EmulatedUnit(
                    d,
                    cfg.devices[d],
                    cfg.maps[cfg.devices[d].map],
                    self.source,
                    profile=PROFILES.get(cfg.devices[d].map),
                )
                for d in dev_ids
            ]
            if isinstance(bus, ModbusTcpBus):
                self.emulators[bus_id] = ModbusGatewayEmulator(units, host=host, port=port)
            elif isinstance(bus, ModbusRtuTcpBus | ModbusRtuSerialBus):
                default: Mode = "tcp" if isinstance(bus, ModbusRtuTcpBus) else "pty"
                mode = modes.get(bus_id, default)
                self.emulators[bus_id] = RtuBusEmulator(units, mode=mode, host=host, port=port)

    @property
    def endpoints(self) -> dict[str, str]:
        """Per bus: "host:port", "socket://host:port" (streams) or a pty device path."""
        out = {}
        for bus_id, emu in self.emulators.items():
            ep = emu.endpoint
            if isinstance(ep, str):
                out[bus_id] = ep
            elif isinstance(emu, DensitometerEmulator):
                out[bus_id] = f"socket://{ep[0]}:{ep[1]}"
            else:
                out[bus_id] = f"{ep[0]}:{ep[1]}"
        return out

    def set_fault(self, device_id: str, kind: str, **params: Any) -> None:
        self.emulators[self.device_bus[device_id]].set_fault(device_id, kind, **params)

    def clear_fault(self, device_id: str, kind: str | None = None) -> None:
        self.emulators[self.device_bus[device_id]].clear_fault(device_id, kind)

    def write_requests(self) -> int:
        """Modbus write function codes received by any emulator of this rig (must stay 0)."""
        return sum(
            e.fc_log.writes()
            for e in self.emulators.values()
            if not isinstance(e, DensitometerEmulator)
        )

    def bytes_to_densitometers(self) -> int:
        return sum(
            e.rx_bytes for e in self.emulators.values() if isinstance(e, DensitometerEmulator)
        )

    async def start(self) -> None:
        started: list[Emulator] = []
        try:
            for emu in self.emulators.values():
                await emu.start()
                started.append(emu)
        except BaseException:
            for emu in started:
                await emu.stop()
            raise

    async def stop(self) -> None:
        for emu in self.emulators.values():
            await emu.stop()

    async def restart(self, bus_id: str) -> None:
        """Stop and start one emulator on the same port (reconnect tests)."""
        emu = self.emulators[bus_id]
        await emu.stop()
        await emu.start()

    async def __aenter__(self) -> Rig:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
