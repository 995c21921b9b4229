"""Catalogue of the emulated devices and channels (ids as in docs/CONVENTIONS.md).

Data only: poll rates and register resolutions come from ICD.md; noise and lag are the
plant's choice of realistic instruments. It imports only the fault vocabulary
(:mod:`hil.faults`, a leaf) so the scenario loader can use it to check fault targets.
"""

from __future__ import annotations

from dataclasses import dataclass

from hil.faults import Target

__all__ = [
    "AI_COUNTS_SPAN",
    "CHANNELS",
    "DEVICES",
    "ENDPOINTS",
    "ChannelSpec",
    "DeviceSpec",
    "resolve_target",
]

AI_COUNTS_SPAN = 27648  # counts at 20 mA (4 mA = 0), ICD AI-20


@dataclass(frozen=True)
class ChannelSpec:
    """One channel's instrument model: reading = lag(true + bias) + noise, then quantised.

    ``quantum`` is the register resolution (0 = none beyond the wire type), ``float32``
    marks values that travel as float32 registers, ``ai_range`` the 4-20 mA scaling of an
    AI-20 input (quantised in counts, NAMUR bands apply).
    """

    noise: float = 0.0
    #: correlation time of the noise (AR(1)); 0 = independent samples
    noise_tau_s: float = 0.0
    quantum: float = 0.0
    lag_s: float = 0.0
    float32: bool = False
    ai_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class DeviceSpec:
    """A polled unit or a stream: reference rate, endpoint and its channels in order.

    ``bits`` names the bits of the ``status`` channel from bit 0: the 0/1 channels a driver
    derives from it (as the config's register and sentence maps name them).
    """

    endpoint: str
    rate_hz: float
    status: str | None
    channels: dict[str, ChannelSpec]
    bits: tuple[str, ...] = ()


_PUMP = {
    "status_word": ChannelSpec(),
    "speed": ChannelSpec(noise=0.6, quantum=1.0, lag_s=0.2),
    "motor_current": ChannelSpec(noise=0.4, quantum=0.1, lag_s=0.2),
    "torque": ChannelSpec(noise=0.25, quantum=0.1, lag_s=0.2),
    "shaft_power": ChannelSpec(noise=0.4, lag_s=0.2, float32=True),
    "dc_bus_voltage": ChannelSpec(noise=1.2, quantum=1.0),
    "fault_code": ChannelSpec(),
    "run_hours": ChannelSpec(quantum=0.1),
}
_FLOW = {
    "volume_flow": ChannelSpec(noise=0.6, noise_tau_s=2.0, lag_s=0.5, float32=True),
    "velocity": ChannelSpec(noise=0.004, lag_s=0.5, float32=True),
    "totalizer": ChannelSpec(),
    "diagnostics": ChannelSpec(),
    "conductivity": ChannelSpec(noise=150.0, quantum=10.0, lag_s=2.0),
}
_SUBSEA = {
    "pressure": ChannelSpec(noise=0.35, noise_tau_s=1.0, lag_s=0.05, float32=True),
    "temperature": ChannelSpec(noise=0.004, quantum=0.01, lag_s=5.0),
    "status": ChannelSpec(),
    "sample_counter": ChannelSpec(),
}

_PUMP_BITS = ("ready", "running", "fault", "remote", "at_speed")
_FLOW_BITS = ("empty_pipe", "coil_fault", "electrode_fault", "out_of_range", "simulation_active")
_SUBSEA_BITS = ("sensor_fault", "over_range", "temp_comp_out_of_range")

DEVICES: dict[str, DeviceSpec] = {
    "p101a": DeviceSpec("gateway", 5.0, "status_word", _PUMP, _PUMP_BITS),
    "p101b": DeviceSpec("gateway", 5.0, "status_word", _PUMP, _PUMP_BITS),
    "ft101": DeviceSpec("gateway", 10.0, "diagnostics", _FLOW, _FLOW_BITS),
    "ft201": DeviceSpec("gateway", 10.0, "diagnostics", _FLOW, _FLOW_BITS),
    "ai20": DeviceSpec(
        "gateway",
        50.0,
        None,
        {
            "pt101": ChannelSpec(noise=0.04, lag_s=0.05, ai_range=(0.0, 250.0)),
            "pt201": ChannelSpec(noise=0.006, lag_s=0.05, ai_range=(0.0, 25.0)),
            "tt201": ChannelSpec(noise=0.02, lag_s=3.0, ai_range=(0.0, 50.0)),
        },
    ),
    "pt301": DeviceSpec("subsea_bus", 10.0, "status", _SUBSEA, _SUBSEA_BITS),
    "pt302": DeviceSpec("subsea_bus", 10.0, "status", _SUBSEA, _SUBSEA_BITS),
    "pt303": DeviceSpec("subsea_bus", 10.0, "status", _SUBSEA, _SUBSEA_BITS),
    "dt201": DeviceSpec(
        "dt201",
        2.0,
        "status",
        {
            "density": ChannelSpec(noise=0.7, noise_tau_s=5.0, quantum=0.01, lag_s=2.0),
            "temperature": ChannelSpec(noise=0.03, quantum=0.1, lag_s=5.0),
            "count_rate": ChannelSpec(quantum=1.0, lag_s=2.0),
            "status": ChannelSpec(),
        },
        ("source_decay_warning", "low_count_rate", "empty_pipe", "calibration_due", "hold"),
    ),
}

ENDPOINTS: dict[str, tuple[str, ...]] = {
    ep: tuple(d for d, spec in DEVICES.items() if spec.endpoint == ep)
    for ep in ("gateway", "subsea_bus", "dt201")
}

CHANNELS: dict[str, ChannelSpec] = {
    f"{dev}.{name}": ch for dev, spec in DEVICES.items() for name, ch in spec.channels.items()
}


def resolve_target(target: str) -> Target:
    """The devices a fault target hits, and the channel name when it names one channel.

    ``gateway``/``subsea_bus`` name every device behind that endpoint; ``dt201`` is both
    a device and its own endpoint.
    """
    channel = None
    if target in DEVICES:
        devices: tuple[str, ...] = (target,)
    elif target in ENDPOINTS:
        devices = ENDPOINTS[target]
    elif target in CHANNELS:
        dev, channel = target.split(".", 1)
        devices = (dev,)
    else:
        known = sorted([*DEVICES, *ENDPOINTS, *CHANNELS])
        raise ValueError(f"unknown fault target {target!r}; known: {', '.join(known)}")
    return Target(
        name=target,
        devices=devices,
        channel=channel,
        endpoint=target in ENDPOINTS,
        modbus=all(DEVICES[d].endpoint != "dt201" for d in devices),
        has_status=DEVICES[devices[0]].status is not None,
    )
