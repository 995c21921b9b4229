"""Declarative device descriptions: buses, register maps and quality rules as data.

These pydantic models are the contract between configuration, drivers and emulators: a second
installation needs another config file, never another code path. Checks that span several
fields (overlapping registers, word orders on 16-bit types...) live beside them in
`drivers.spec_checks`, so that every error can name its key path.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

DataType = Literal["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64"]
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
QualityName = Literal["uncertain", "bad"]

#: Registers each data type occupies; a field's `count` must match.
REGISTER_COUNT: dict[str, int] = {
    "int16": 1,
    "uint16": 1,
    "int32": 2,
    "uint32": 2,
    "int64": 4,
    "uint64": 4,
    "float32": 2,
    "float64": 4,
}

#: Modbus read function codes the DAQ may use. Writes (5, 6, 15, 16, 22, 23) are unrepresentable.
READ_FUNCTIONS: dict[int, str] = {3: "holding", 4: "input"}


#: Control characters have no place in a config string (a description may span lines): a NUL
#: or CR/LF would only surface later, as a crash or an injection when the string becomes a
#: path, topic, URL or header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def between(lo: float, hi: float, *, open_lo: bool = False) -> Any:
    """A finite number in [lo, hi] (or (lo, hi]), of the declared type: no bool, no string,
    no 3.0 for an int. Every numeric config key gets one, so no value reaches the core that
    is nan, inf or outside what makes physical and computational sense."""
    if open_lo:
        return Field(strict=True, allow_inf_nan=False, gt=lo, le=hi)
    return Field(strict=True, allow_inf_nan=False, ge=lo, le=hi)


#: Hostnames and IP literals (IPv6 in brackets or bare); no spaces, slashes or schemes.
HOST = Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9._:\[\]-]+$")]
#: A TCP port (0 is not one a peer can be reached at).
PORT = Annotated[int, between(1, 65535)]
#: Seconds a bus or device waits before retrying; beyond an hour a dead link is never retried
#: in practice, and below a millisecond the retry loop spins.
RETRY_S = Annotated[float, between(0.001, 3600.0)]


class Strict(BaseModel):
    """Base for config records: unknown keys are errors, values are immutable, every float is
    finite, and strings carry no control characters."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _printable(cls, value: Any, info: ValidationInfo) -> Any:
        control = _CONTROL_BUT_LINES if info.field_name == "description" else _CONTROL
        if isinstance(value, str) and control.search(value):
            raise ValueError("control character in string")
        return value


class AnalogInput(Strict):
    """4-20 mA loop read as counts; NAMUR NE43 decides the quality (ICD, AI-20)."""

    #: Engineering range; wider than 1e9 in any unit is a typo, not an instrument.
    eng_min: Annotated[float, between(-1e9, 1e9)]
    eng_max: Annotated[float, between(-1e9, 1e9)]
    #: Counts of a 16-bit register, signed or unsigned.
    counts_at_4ma: Annotated[int, between(-32768, 65535)] = 0
    counts_at_20ma: Annotated[int, between(-32768, 65535)] = 27648


class Field_(Strict):
    """One quantity in a register map; becomes channel `<device>.<name>`."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    address: Annotated[int, between(0, 65535)]
    function: Literal[3, 4] = 3
    type: DataType = "uint16"
    count: Annotated[int, between(1, 4)] | None = None
    word_order: WordOrder | None = None
    #: value = raw * scale + offset; |scale| >= 1e-12 (checked with the map) and <= 1e9.
    scale: Annotated[float, between(-1e9, 1e9)] = 1.0
    offset: Annotated[float, between(-1e9, 1e9)] = 0.0
    unit: str = ""
    description: str = ""
    bits: dict[int, Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]] = Field(
        default_factory=dict
    )
    analog: AnalogInput | None = None
    #: Engineering span (after scale/offset); beyond it by more than `validity.RANGE_MARGIN`
    #: of the span a value is BAD (`out_of_range`). Without one only non-finite values are.
    range: tuple[float, float] | None = None

    @property
    def registers(self) -> int:
        return self.count if self.count is not None else REGISTER_COUNT[self.type]


class BitQualityRule(Strict):
    """Bits of a status field that degrade other fields of the same poll."""

    source: str
    mask: Annotated[int, between(1, 0xFFFFFFFF)]
    quality: QualityName
    applies_to: list[str]


class CounterRule(Strict):
    """A free-running counter that stops moving means a frozen reading (BAD)."""

    field: str
    stale_after_s: Annotated[float, between(0.0, 3600.0, open_lo=True)] = 0.5
    applies_to: list[str]


class RegisterMap(Strict):
    """A device model's registers and its quality semantics (Telegraf-style plain data)."""

    description: str = ""
    fields: list[Field_]
    quality_rules: list[BitQualityRule] = Field(default_factory=list)
    counter: CounterRule | None = None


class StreamField(Strict):
    """A field of an ASCII sentence; position counts after the sentence tag."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    #: An NMEA-style line of at most a few hundred bytes has far fewer fields.
    position: Annotated[int, between(0, 255)]
    format: Literal["int", "float", "hex"] = "float"
    unit: str = ""
    bits: dict[int, Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]] = Field(
        default_factory=dict
    )
    #: Engineering span, as `Field_.range`.
    range: tuple[float, float] | None = None


class SentenceMap(Strict):
    """An NMEA-style sentence: tag, fields, sequence counter and status-bit quality."""

    tag: Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,16}$")] = "PDNS"
    fields: list[StreamField]
    sequence_field: str | None = "seq"
    #: A sequence counter wraps at a power of two up to 32 bits.
    sequence_modulo: Annotated[int, between(2, 2**32)] = 65536
    quality_rules: list[BitQualityRule] = Field(default_factory=list)


class Workarounds(Strict):
    """Per-device quirks as data; each exists because some real device needs it."""

    max_registers_per_request: Annotated[int, between(1, 125)] = 125
    #: Unused registers a request may span to join two fields (fewer transactions).
    hole_fill: Annotated[int, between(0, 125)] = 10
    #: Some gateways answer only exactly-mapped reads.
    one_request_per_field: bool = False
    #: A pause longer than 10 s would starve every other device on the bus.
    pause_between_requests_s: Annotated[float, between(0.0, 10.0)] = 0.0
    pause_after_connect_s: Annotated[float, between(0.0, 10.0)] = 0.0


#: Seconds a Modbus master waits for a reply.
TIMEOUT_S = Annotated[float, between(0.0, 60.0, open_lo=True)]
RETRIES = Annotated[int, between(0, 10)]


class _Reconnecting(Strict):
    """A link re-opened after a loss, the delay doubling from min to max."""

    reconnect_min_s: RETRY_S = 0.5
    reconnect_max_s: RETRY_S = 30.0


class _ModbusLink(_Reconnecting):
    """A Modbus master's patience with one request (RTU defaults: a short serial turn)."""

    timeout_s: TIMEOUT_S = 0.3
    retries: RETRIES = 0


class _ModbusOverTcp(_ModbusLink):
    """A Modbus master that reaches its units through one TCP socket."""

    host: HOST
    port: PORT


class ModbusTcpBus(_ModbusOverTcp):
    """Modbus TCP (MBAP framing): a network's patience, one retry."""

    transport: Literal["modbus_tcp"]
    port: PORT = 502
    timeout_s: TIMEOUT_S = 1.0
    retries: RETRIES = 1


class ModbusRtuTcpBus(_ModbusOverTcp):
    """Modbus RTU framing through a serial device server's raw TCP socket."""

    transport: Literal["modbus_rtu_tcp"]
    port: PORT = 4001


class SerialLine(Strict):
    baudrate: Annotated[int, between(50, 4_000_000)] = 38400
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1


class ModbusRtuSerialBus(SerialLine, _ModbusLink):
    transport: Literal["modbus_rtu_serial"]
    device: Annotated[str, Field(min_length=1)]


class AsciiStreamBus(SerialLine, _Reconnecting):
    """A device-paced sentence stream: pyserial URL (`/dev/ttyS2`, `socket://host:port`)."""

    transport: Literal["ascii_stream"]
    url: Annotated[str, Field(min_length=1)]
    baudrate: Annotated[int, between(50, 4_000_000)] = 19200
    parity: Literal["N", "E", "O"] = "N"
    #: No sentence for this long marks the device's channels BAD and reconnects.
    silence_timeout_s: Annotated[float, between(0.0, 3600.0, open_lo=True)] = 2.0


Bus = Annotated[
    ModbusTcpBus | ModbusRtuTcpBus | ModbusRtuSerialBus | AsciiStreamBus,
    Field(discriminator="transport"),
]


class Device(Strict):
    """One addressable instrument on a bus; `map` names a register or sentence map."""

    bus: str
    map: str
    unit: Annotated[int, between(0, 247)] | None = None
    #: One Modbus transaction takes about a millisecond at best: 1 kHz is the ceiling.
    poll_hz: Annotated[float, between(0.0, 1000.0, open_lo=True)] | None = None
    tag: str = ""
    description: str = ""
    #: Analog inputs that are not wired; configuring a field there is an error (ICD AI-20).
    unwired: list[Annotated[int, between(0, 65535)]] = Field(default_factory=list)
    workarounds: Workarounds = Field(default_factory=Workarounds)
    #: Backoff after a failed transaction, doubling up to the max, so one dead unit
    #: costs its bus little time.
    backoff_min_s: RETRY_S = 0.5
    backoff_max_s: RETRY_S = 10.0
