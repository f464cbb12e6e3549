"""The SunSpec layouts against the published model definitions, and the point codec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.sources.sunspec_models import (
    COMMON,
    INVERTER,
    LAYOUTS,
    METER,
    InvalidRegisters,
    ModelBlock,
    Point,
    PointType,
    decode_point,
    encode_model,
    encode_point,
)


@pytest.mark.parametrize("model_id", sorted(LAYOUTS))
def test_points_tile_the_model_exactly(model_id: int) -> None:
    layout = LAYOUTS[model_id]
    covered = sorted(offset for p in layout.points for offset in range(p.offset, p.offset + p.size))
    assert covered == list(range(2, layout.length + 2)), "every register once, no gaps, no overlap"


@pytest.mark.parametrize("model_id", sorted(LAYOUTS))
def test_scale_factor_references_exist(model_id: int) -> None:
    layout = LAYOUTS[model_id]
    for p in layout.points:
        if isinstance(p.sf, str):
            assert layout.point(p.sf).type is PointType.SUNSSF


@pytest.mark.parametrize(("layout", "name", "offset", "type_"), [
    # Offsets from the SunSpec model definitions (json/model_1, _103, _203), counted from the ID register.
    (COMMON, "SN", 50, PointType.STRING), (COMMON, "DA", 66, PointType.UINT16),
    (INVERTER, "W", 14, PointType.INT16), (INVERTER, "Hz", 16, PointType.UINT16),
    (INVERTER, "WH", 24, PointType.ACC32), (INVERTER, "WH_SF", 26, PointType.SUNSSF),
    (INVERTER, "DCW", 31, PointType.INT16), (INVERTER, "TmpCab", 33, PointType.INT16),
    (INVERTER, "St", 38, PointType.ENUM16), (INVERTER, "EvtVnd4", 50, PointType.BITFIELD32),
    (METER, "Hz", 16, PointType.INT16), (METER, "W", 18, PointType.INT16),
    (METER, "W_SF", 22, PointType.SUNSSF),
    (METER, "TotWhExp", 38, PointType.ACC32), (METER, "TotWhImp", 46, PointType.ACC32),
    (METER, "TotWh_SF", 54, PointType.SUNSSF), (METER, "TotVArh_SF", 104, PointType.SUNSSF),
    (METER, "Evt", 105, PointType.BITFIELD32),
])
def test_published_offsets(layout: object, name: str, offset: int, type_: PointType) -> None:
    assert isinstance(layout, type(COMMON))
    point = layout.point(name)
    assert (point.offset, point.type) == (offset, type_)


def test_model_lengths() -> None:
    assert {m: LAYOUTS[m].length for m in (1, 101, 103, 201, 203, 204, 302, 308)} == {
        1: 66, 101: 50, 103: 50, 201: 105, 203: 105, 204: 105, 302: 5, 308: 4}


@pytest.mark.parametrize(("type_", "marker"), [
    (PointType.UINT16, [0xFFFF]), (PointType.INT16, [0x8000]), (PointType.SUNSSF, [0x8000]),
    (PointType.ENUM16, [0xFFFF]), (PointType.BITFIELD32, [0xFFFF, 0xFFFF]),
])
def test_not_implemented_markers_decode_to_none(type_: PointType, marker: list[int]) -> None:
    point = Point("X", 0, type_, len(marker))
    assert decode_point(marker, point) is None
    assert encode_point(None, point) == marker


def test_acc32_zero_is_a_register_value_not_a_marker() -> None:
    point = Point("E", 0, PointType.ACC32, 2)
    assert decode_point([0, 0], point) == 0


@given(st.integers(-0x7FFF, 0x7FFF))
def test_int16_round_trip(value: int) -> None:
    point = Point("X", 0, PointType.INT16)
    assert decode_point(encode_point(value, point), point) == value


@given(st.integers(0, 0xFFFFFFFF))
def test_acc32_round_trip_big_endian(value: int) -> None:
    point = Point("E", 0, PointType.ACC32, 2)
    registers = encode_point(value, point)
    assert registers == [value >> 16, value & 0xFFFF]
    assert decode_point(registers, point) == value


@given(st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=32))
def test_string_round_trip(text: str) -> None:
    point = Point("SN", 0, PointType.STRING, 16)
    assert decode_point(encode_point(text, point), point) == text


@pytest.mark.parametrize(("value", "type_"), [(0x8000, PointType.INT16), (-0x8000, PointType.INT16),
                                              (0xFFFF, PointType.UINT16), (11, PointType.SUNSSF),
                                              (-1, PointType.ACC32), ("x" * 33, PointType.STRING)])
def test_encode_refuses_what_does_not_fit(value: int | str, type_: PointType) -> None:
    with pytest.raises(ValueError, match=r"fit|at most"):
        encode_point(value, Point("X", 0, type_, 16 if type_ is PointType.STRING else 2 if type_ is
                                  PointType.ACC32 else 1))


def test_scale_factors_apply_and_energy_stays_an_exact_integer() -> None:
    block = ModelBlock(203, 40122, tuple(encode_model(203, {
        "TotWhExp": 123_456_789, "TotWh_SF": 2, "W": -4321, "W_SF": -1, "Hz": 5001, "Hz_SF": -2})))
    assert block.value("TotWhExp") == 12_345_678_900
    assert isinstance(block.value("TotWhExp"), int)
    assert block.value("W") == pytest.approx(-432.1)
    assert block.value("Hz") == pytest.approx(50.01)
    assert block.value("TotWhImp") == 0  # an acc32 left at 0 reads as a zero register
    assert block.value("VA") is None  # not implemented


def test_implemented_point_with_unimplemented_scale_factor_is_invalid() -> None:
    block = ModelBlock(203, 0, tuple(encode_model(203, {"W": 100})))
    with pytest.raises(InvalidRegisters, match="W_SF"):
        block.value("W")


def test_scale_factor_out_of_range_is_invalid() -> None:
    registers = encode_model(203, {"W": 100})
    registers[METER.point("W_SF").offset] = 12
    with pytest.raises(InvalidRegisters, match=r"-10\.\.10"):
        ModelBlock(203, 0, tuple(registers)).value("W")


def test_encode_model_rejects_unknown_points() -> None:
    with pytest.raises(ValueError, match="no points"):
        encode_model(203, {"Watts": 1})
