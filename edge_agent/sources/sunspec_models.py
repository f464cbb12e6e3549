"""The SunSpec information model: register layouts of the models we read and serve, and their codec.

Pure (no I/O): the Modbus client in `sunspec.py` decodes with it and the simulator's server encodes
with it. A SunSpec device holds, from a base address (40000; some devices use 0 or 50000), the
marker "SunS" and then a chain of models, each [ID, L, then L registers of points], ended by a
model with ID 0xFFFF. Offsets count registers from the model's ID register, as in the SunSpec
model definitions (github.com/sunspec/models, json/model_<id>.json):

=========== ====================== ===================================================================
model        L                      offset: point type [scale factor]
=========== ====================== ===================================================================
1 common     66 (65 in older maps)  2 Mn str[16], 18 Md str[16], 34 Opt str[8], 42 Vr str[8],
                                    50 SN str[16], 66 DA uint16, 67 Pad
101/102/103  50                     2 A, 3-5 AphA-C uint16 [A_SF]; 6 A_SF; 7-9 PPVphAB/BC/CA,
inverter                            10-12 PhVphA-C uint16 [V_SF]; 13 V_SF; 14 W int16 [W_SF];
(1-ph, split,                       15 W_SF; 16 Hz uint16 [Hz_SF]; 17 Hz_SF; 18 VA int16; 19 VA_SF;
3-ph)                               20 VAr int16; 21 VAr_SF; 22 PF int16; 23 PF_SF;
                                    24 WH acc32 [WH_SF]; 26 WH_SF; 27 DCA uint16; 28 DCA_SF;
                                    29 DCV uint16; 30 DCV_SF; 31 DCW int16; 32 DCW_SF;
                                    33-36 TmpCab/Snk/Trns/Ot int16 [Tmp_SF]; 37 Tmp_SF; 38 St enum16;
                                    39 StVnd enum16; 40 Evt1, 42 Evt2, 44-50 EvtVnd1-4 bitfield32
201/202/203/ 105                    2 A, 3-5 AphA-C int16 [A_SF]; 6 A_SF; 7 PhV, 8-10 PhVphA-C,
204 meter                           11 PPV, 12-14 PhVphAB/BC/CA int16 [V_SF]; 15 V_SF;
(1-ph, split,                       16 Hz int16 [Hz_SF]; 17 Hz_SF; 18 W, 19-21 WphA-C int16 [W_SF];
wye, delta)                         22 W_SF; 23-26 VA.. [VA_SF] 27; 28-31 VAR.. [VAR_SF] 32;
                                    33-36 PF.. [PF_SF] 37; 38 TotWhExp, 40-44 TotWhExpPhA-C,
                                    46 TotWhImp, 48-52 TotWhImpPhA-C acc32 [TotWh_SF]; 54 TotWh_SF;
                                    55-69 TotVAh{Exp,Imp}.. acc32 [TotVAh_SF] 71;
                                    72-102 TotVArh{ImpQ1,ImpQ2,ExpQ3,ExpQ4}.. acc32 [TotVArh_SF] 104;
                                    105 Evt bitfield32
302          5 per sensor           repeating: +0 GHI, +1 POAI, +2 DFI, +3 DNI, +4 OTI uint16 W/m²
irradiance                          (we read and serve one sensor: offsets 2-6)
308 mini met 4                      2 GHI uint16 W/m², 3 TmpBOM int16 [−1], 4 TmpAmb int16 [−1],
                                    5 WndSpd uint16 m/s
=========== ====================== ===================================================================

"Not implemented" markers: uint16 and enum16 0xFFFF, int16 and sunssf 0x8000, uint32 and
bitfield32 0xFFFFFFFF, string all NULs. An acc32 accumulator uses 0 for "not accumulated", which
cannot be told apart from a fresh register: we read 0 as 0 Wh, so register differences stay right.
Accumulators roll over at 2³²: a server picks its energy scale factor so that does not happen.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SUNS_MARKER = (0x5375, 0x6E53)  # "SunS"
BASE_ADDRESSES = (40000, 0, 50000)  # where discovery looks for the marker, in this order
END_MODEL_ID = 0xFFFF
MAX_REGISTERS_PER_READ = 125  # Modbus limit for function 3
MAX_SCALE_FACTOR = 10  # the SunSpec range of sunssf is -10..10


class PointType(enum.StrEnum):
    UINT16 = "uint16"
    INT16 = "int16"
    ENUM16 = "enum16"
    SUNSSF = "sunssf"
    ACC32 = "acc32"
    BITFIELD32 = "bitfield32"
    STRING = "string"
    PAD = "pad"


_SIZE = {PointType.ACC32: 2, PointType.BITFIELD32: 2}
_NOT_IMPLEMENTED = {PointType.UINT16: 0xFFFF, PointType.ENUM16: 0xFFFF, PointType.INT16: 0x8000,
                    PointType.SUNSSF: 0x8000, PointType.BITFIELD32: 0xFFFFFFFF}


class InvalidRegisters(ValueError):
    """Register contents that do not decode as the SunSpec model says they must."""


@dataclass(frozen=True)
class Point:
    name: str
    offset: int  # registers from the model's ID register
    type: PointType
    size: int = 1  # registers
    sf: str | int | None = None  # the scale-factor point's name, a fixed exponent, or none


@dataclass(frozen=True)
class ModelLayout:
    name: str
    length: int  # L: registers after ID and L
    points: tuple[Point, ...]

    def point(self, name: str) -> Point:
        for p in self.points:
            if p.name == name:
                return p
        raise KeyError(f"{self.name} has no point {name!r}")


def _run(offset: int, type_: PointType, sf: str | int | None, *names: str) -> tuple[Point, ...]:
    """Consecutive points of one type and scale factor starting at `offset`."""
    size = _SIZE.get(type_, 1)
    return tuple(Point(name, offset + i * size, type_, size, sf) for i, name in enumerate(names))


def _sf(offset: int, name: str) -> Point:
    return Point(name, offset, PointType.SUNSSF)


def _phases(prefix: str) -> tuple[str, ...]:
    return prefix, f"{prefix}PhA", f"{prefix}PhB", f"{prefix}PhC"


_U16, _I16, _ACC = PointType.UINT16, PointType.INT16, PointType.ACC32

COMMON = ModelLayout("common", 66, (
    Point("Mn", 2, PointType.STRING, 16), Point("Md", 18, PointType.STRING, 16),
    Point("Opt", 34, PointType.STRING, 8), Point("Vr", 42, PointType.STRING, 8),
    Point("SN", 50, PointType.STRING, 16), Point("DA", 66, _U16), Point("Pad", 67, PointType.PAD),
))

INVERTER = ModelLayout("inverter", 50, (
    *_run(2, _U16, "A_SF", "A", "AphA", "AphB", "AphC"), _sf(6, "A_SF"),
    *_run(7, _U16, "V_SF", "PPVphAB", "PPVphBC", "PPVphCA", "PhVphA", "PhVphB", "PhVphC"), _sf(13, "V_SF"),
    Point("W", 14, _I16, sf="W_SF"), _sf(15, "W_SF"),
    Point("Hz", 16, _U16, sf="Hz_SF"), _sf(17, "Hz_SF"),
    Point("VA", 18, _I16, sf="VA_SF"), _sf(19, "VA_SF"),
    Point("VAr", 20, _I16, sf="VAr_SF"), _sf(21, "VAr_SF"),
    Point("PF", 22, _I16, sf="PF_SF"), _sf(23, "PF_SF"),
    Point("WH", 24, _ACC, 2, "WH_SF"), _sf(26, "WH_SF"),
    Point("DCA", 27, _U16, sf="DCA_SF"), _sf(28, "DCA_SF"),
    Point("DCV", 29, _U16, sf="DCV_SF"), _sf(30, "DCV_SF"),
    Point("DCW", 31, _I16, sf="DCW_SF"), _sf(32, "DCW_SF"),
    *_run(33, _I16, "Tmp_SF", "TmpCab", "TmpSnk", "TmpTrns", "TmpOt"), _sf(37, "Tmp_SF"),
    Point("St", 38, PointType.ENUM16), Point("StVnd", 39, PointType.ENUM16),
    *_run(40, PointType.BITFIELD32, None, "Evt1", "Evt2", "EvtVnd1", "EvtVnd2", "EvtVnd3", "EvtVnd4"),
))

METER = ModelLayout("meter", 105, (
    *_run(2, _I16, "A_SF", "A", "AphA", "AphB", "AphC"), _sf(6, "A_SF"),
    *_run(7, _I16, "V_SF", "PhV", "PhVphA", "PhVphB", "PhVphC", "PPV", "PhVphAB", "PhVphBC", "PhVphCA"),
    _sf(15, "V_SF"),
    Point("Hz", 16, _I16, sf="Hz_SF"), _sf(17, "Hz_SF"),
    *_run(18, _I16, "W_SF", "W", "WphA", "WphB", "WphC"), _sf(22, "W_SF"),
    *_run(23, _I16, "VA_SF", "VA", "VAphA", "VAphB", "VAphC"), _sf(27, "VA_SF"),
    *_run(28, _I16, "VAR_SF", "VAR", "VARphA", "VARphB", "VARphC"), _sf(32, "VAR_SF"),
    *_run(33, _I16, "PF_SF", "PF", "PFphA", "PFphB", "PFphC"), _sf(37, "PF_SF"),
    *_run(38, _ACC, "TotWh_SF", *_phases("TotWhExp"), *_phases("TotWhImp")), _sf(54, "TotWh_SF"),
    *_run(55, _ACC, "TotVAh_SF", *_phases("TotVAhExp"), *_phases("TotVAhImp")), _sf(71, "TotVAh_SF"),
    *_run(72, _ACC, "TotVArh_SF", *_phases("TotVArhImpQ1"), *_phases("TotVArhImpQ2"),
          *_phases("TotVArhExpQ3"), *_phases("TotVArhExpQ4")), _sf(104, "TotVArh_SF"),
    Point("Evt", 105, PointType.BITFIELD32, 2),
))

IRRADIANCE = ModelLayout("irradiance", 5, _run(2, _U16, None, "GHI", "POAI", "DFI", "DNI", "OTI"))

MINI_MET = ModelLayout("mini_met", 4, (
    Point("GHI", 2, _U16), Point("TmpBOM", 3, _I16, sf=-1), Point("TmpAmb", 4, _I16, sf=-1),
    Point("WndSpd", 5, _U16),
))

INVERTER_MODELS = frozenset({101, 102, 103})
METER_MODELS = frozenset({201, 202, 203, 204})
LAYOUTS: dict[int, ModelLayout] = {
    1: COMMON, **dict.fromkeys(INVERTER_MODELS, INVERTER), **dict.fromkeys(METER_MODELS, METER),
    302: IRRADIANCE, 308: MINI_MET,
}

Raw = int | str | None  # a decoded point: None when the device marks it "not implemented"


def decode_point(registers: Sequence[int], point: Point) -> Raw:
    """The raw value of `point` in a model block starting at the model's ID register."""
    regs = registers[point.offset:point.offset + point.size]
    if len(regs) < point.size:
        raise InvalidRegisters(f"{point.name} lies beyond the model's registers")
    match point.type:
        case PointType.STRING:
            text = b"".join(r.to_bytes(2, "big") for r in regs).rstrip(b"\0").decode("utf-8", "replace")
            return text.strip() or None
        case PointType.PAD:
            return None
        case PointType.ACC32:
            return regs[0] << 16 | regs[1]
    value = regs[0] << 16 | regs[1] if point.size == 2 else regs[0]
    if value == _NOT_IMPLEMENTED[point.type]:
        return None
    if point.type in (PointType.INT16, PointType.SUNSSF) and value >= 0x8000:
        value -= 0x10000
    return value


def encode_point(value: Raw, point: Point) -> list[int]:
    """The registers holding `value` (None: the type's "not implemented" marker)."""
    if point.type is PointType.STRING:
        data = b"" if value is None else value.encode() if isinstance(value, str) else None
        if data is None or len(data) > 2 * point.size:
            raise ValueError(f"{point.name} holds a string of at most {2 * point.size} bytes")
        data = data.ljust(2 * point.size, b"\0")
        return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    if point.type is PointType.PAD:
        return [0]
    if value is None:
        if point.type is PointType.ACC32:
            return [0, 0]
        value = _NOT_IMPLEMENTED[point.type]
    elif not isinstance(value, int) or not _in_range(value, point.type):
        raise ValueError(f"{point.name}: {value!r} does not fit {point.type}")
    value &= 0xFFFFFFFF if point.size == 2 else 0xFFFF
    return [value >> 16, value & 0xFFFF] if point.size == 2 else [value]


def _in_range(value: int, type_: PointType) -> bool:
    match type_:
        case PointType.INT16:
            return -0x7FFF <= value <= 0x7FFF
        case PointType.SUNSSF:
            return -MAX_SCALE_FACTOR <= value <= MAX_SCALE_FACTOR
        case PointType.ACC32:
            return 0 <= value <= 0xFFFFFFFF
        case PointType.BITFIELD32:
            return 0 <= value < 0xFFFFFFFF
    return 0 <= value < 0xFFFF


def encode_model(model_id: int, values: Mapping[str, Raw]) -> list[int]:
    """A model block [ID, L, points...]; points missing from `values` are "not implemented"."""
    layout = LAYOUTS[model_id]
    unknown = set(values) - {p.name for p in layout.points}
    if unknown:
        raise ValueError(f"model {model_id} has no points {sorted(unknown)}")
    block = [model_id, layout.length] + [0] * layout.length
    for p in layout.points:
        block[p.offset:p.offset + p.size] = encode_point(values.get(p.name), p)
    return block


@dataclass(frozen=True)
class ModelBlock:
    """One model's registers as read from a device, starting at its ID register."""

    model_id: int
    address: int
    registers: tuple[int, ...]

    @property
    def layout(self) -> ModelLayout:
        return LAYOUTS[self.model_id]

    def raw(self, name: str) -> Raw:
        return decode_point(self.registers, self.layout.point(name))

    def value(self, name: str) -> int | float | None:
        """The point in its unit, scale factor applied; None if not implemented. Integers stay
        exact integers when the scale factor is not negative (energy registers)."""
        point = self.layout.point(name)
        raw = decode_point(self.registers, point)
        if raw is None:
            return None
        if not isinstance(raw, int):
            raise InvalidRegisters(f"{name} is not numeric")
        if point.sf is None:
            return raw
        sf = point.sf if isinstance(point.sf, int) else self.raw(point.sf)
        if not isinstance(sf, int):
            raise InvalidRegisters(f"{name} is implemented but its scale factor {point.sf} is not")
        if not -MAX_SCALE_FACTOR <= sf <= MAX_SCALE_FACTOR:
            raise InvalidRegisters(f"scale factor {point.sf} = {sf} is outside -10..10")
        if sf >= 0:
            factor: int = 10**sf
            return raw * factor  # exact: energy registers stay integers
        return raw / 10.0**-sf
