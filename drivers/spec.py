"""Declarative device descriptions: buses, register maps and quality rules as data.

These pydantic models are the contract between configuration, drivers and emulators: a second
installation needs another config file, never another code path. Semantic checks that span
several fields (overlapping registers, word orders on 16-bit types...) live in
`drivers.spec_checks` so that every error can name its key path.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

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


class Strict(BaseModel):
    """Base for config records: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class AnalogInput(Strict):
    """4-20 mA loop read as counts; NAMUR NE43 decides the quality (ICD, AI-20)."""

    eng_min: float
    eng_max: float
    counts_at_4ma: int = 0
    counts_at_20ma: int = 27648


class Field_(Strict):
    """One quantity in a register map; becomes channel `<device>.<name>`."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    address: Annotated[int, Field(ge=0, le=65535)]
    function: Literal[3, 4] = 3
    type: DataType = "uint16"
    count: PositiveInt | None = None
    word_order: WordOrder | None = None
    scale: float = 1.0
    offset: float = 0.0
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
    mask: Annotated[int, Field(ge=1, le=0xFFFFFFFF)]
    quality: QualityName
    applies_to: list[str]


class CounterRule(Strict):
    """A free-running counter that stops moving means a frozen reading (BAD)."""

    field: str
    stale_after_s: PositiveFloat = 0.5
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
    position: Annotated[int, Field(ge=0)]
    format: Literal["int", "float", "hex"] = "float"
    unit: str = ""
    bits: dict[int, Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]] = Field(
        default_factory=dict
    )
    #: Engineering span, as `Field_.range`.
    range: tuple[float, float] | None = None


class SentenceMap(Strict):
    """An NMEA-style sentence: tag, fields, sequence counter and status-bit quality."""

    tag: str = "PDNS"
    fields: list[StreamField]
    sequence_field: str | None = "seq"
    sequence_modulo: PositiveInt = 65536
    quality_rules: list[BitQualityRule] = Field(default_factory=list)


class Workarounds(Strict):
    """Per-device quirks as data; each exists because some real device needs it."""

    max_registers_per_request: Annotated[int, Field(ge=1, le=125)] = 125
    #: Unused registers a request may span to join two fields (fewer transactions).
    hole_fill: Annotated[int, Field(ge=0, le=125)] = 10
    #: Some gateways answer only exactly-mapped reads.
    one_request_per_field: bool = False
    pause_between_requests_s: Annotated[float, Field(ge=0.0)] = 0.0
    pause_after_connect_s: Annotated[float, Field(ge=0.0)] = 0.0


class ModbusTcpBus(Strict):
    transport: Literal["modbus_tcp"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 502
    timeout_s: PositiveFloat = 1.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    reconnect_min_s: PositiveFloat = 0.5
    reconnect_max_s: PositiveFloat = 30.0


class ModbusRtuTcpBus(Strict):
    """Modbus RTU framing through a serial device server's raw TCP socket."""

    transport: Literal["modbus_rtu_tcp"]
    host: str
    port: Annotated[int, Field(ge=1, le=65535)] = 4001
    timeout_s: PositiveFloat = 0.3
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    reconnect_min_s: PositiveFloat = 0.5
    reconnect_max_s: PositiveFloat = 30.0


class SerialLine(Strict):
    baudrate: PositiveInt = 38400
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1


class ModbusRtuSerialBus(SerialLine):
    transport: Literal["modbus_rtu_serial"]
    device: str
    timeout_s: PositiveFloat = 0.3
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    reconnect_min_s: PositiveFloat = 0.5
    reconnect_max_s: PositiveFloat = 30.0


class AsciiStreamBus(SerialLine):
    """A device-paced sentence stream: pyserial URL (`/dev/ttyS2`, `socket://host:port`)."""

    transport: Literal["ascii_stream"]
    url: str
    baudrate: PositiveInt = 19200
    parity: Literal["N", "E", "O"] = "N"
    #: No sentence for this long marks the device's channels BAD and reconnects.
    silence_timeout_s: PositiveFloat = 2.0
    reconnect_min_s: PositiveFloat = 0.5
    reconnect_max_s: PositiveFloat = 30.0


Bus = Annotated[
    ModbusTcpBus | ModbusRtuTcpBus | ModbusRtuSerialBus | AsciiStreamBus,
    Field(discriminator="transport"),
]


class Device(Strict):
    """One addressable instrument on a bus; `map` names a register or sentence map."""

    bus: str
    map: str
    unit: Annotated[int, Field(ge=0, le=247)] | None = None
    poll_hz: PositiveFloat | None = None
    tag: str = ""
    description: str = ""
    #: Analog inputs that are not wired; configuring a field there is an error (ICD AI-20).
    unwired: list[int] = Field(default_factory=list)
    workarounds: Workarounds = Field(default_factory=Workarounds)
    #: Backoff after a failed transaction, doubling up to the max, so one dead unit
    #: costs its bus little time.
    backoff_min_s: PositiveFloat = 0.5
    backoff_max_s: PositiveFloat = 10.0
