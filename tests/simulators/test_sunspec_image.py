"""The served SunSpec map, checked at literal register addresses (not through the shared layout
table, so a wrong offset in that table cannot hide here)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from simulators.plant import Plant, PlantConfig, PlantKind
from simulators.sunspec_image import MAP_SIZE, MODEL_ADDRESSES, SunSpecImage
from tests.simulators.common import HOUR, START


def at(registers: list[int], address: int, count: int = 1) -> list[int]:
    return registers[address - 40000:address - 40000 + count]


def signed(value: int) -> int:
    return value - 0x10000 if value >= 0x8000 else value


def acc32(registers: list[int], address: int) -> int:
    high, low = at(registers, address, 2)
    return high << 16 | low


@pytest.fixture
def pv() -> tuple[SunSpecImage, list[int], Plant]:
    plant = Plant(PlantConfig(PlantKind.PV, 3, capacity_w=10_000), START)
    image = SunSpecImage.for_plant(PlantKind.PV, 10_000, serial="SIM-1")
    return image, image.registers(plant.snapshot(START + 5 * HOUR)), plant


def test_map_layout(pv: tuple[SunSpecImage, list[int], Plant]) -> None:
    _, registers, _ = pv
    assert len(registers) == MAP_SIZE == 244
    assert at(registers, 40000, 2) == [0x5375, 0x6E53]  # "SunS"
    assert [at(registers, a, 2) for a in (40002, 40070, 40122, 40229, 40236, 40242)] == [
        [1, 66], [103, 50], [203, 105], [302, 5], [308, 4], [0xFFFF, 0]]
    assert MODEL_ADDRESSES == {1: 40002, 103: 40070, 203: 40122, 302: 40229, 308: 40236, 0xFFFF: 40242}
    assert bytes(b for r in at(registers, 40004, 5) for b in r.to_bytes(2, "big")) == b"mrv-ledger"


def test_values_at_their_published_offsets(pv: tuple[SunSpecImage, list[int], Plant]) -> None:
    image, registers, plant = pv
    snap = plant.snapshot(START + 5 * HOUR)
    assert (image.power_sf, image.energy_sf) == (0, 0)
    assert signed(at(registers, 40070 + 14)[0]) == round(snap.generation_w)  # inverter W
    assert acc32(registers, 40070 + 24) == snap.generation_wh  # inverter WH
    assert signed(at(registers, 40122 + 18)[0]) == -round(snap.net_power_w)  # meter W, positive = import
    assert acc32(registers, 40122 + 38) == snap.export_wh  # TotWhExp
    assert acc32(registers, 40122 + 46) == snap.import_wh  # TotWhImp
    assert at(registers, 40122 + 54) == [0]  # TotWh_SF
    assert at(registers, 40122 + 16) == [round(snap.frequency_hz * 100)]  # meter Hz, Hz_SF -2
    assert snap.irradiance_w_m2 is not None and snap.module_temperature_c is not None
    assert at(registers, 40229 + 3) == [round(snap.irradiance_w_m2)]  # POAI
    assert signed(at(registers, 40236 + 3)[0]) == round(snap.module_temperature_c * 10)  # TmpBOM
    assert at(registers, 40236 + 5) == [0xFFFF]  # WndSpd: a PV plant has no anemometer


def test_wind_marks_pv_points_not_implemented() -> None:
    plant = Plant(PlantConfig(PlantKind.WIND, 3, capacity_w=10_000), START)
    snap = plant.snapshot(START + HOUR)
    registers = SunSpecImage.for_plant(PlantKind.WIND, 10_000, serial="W").registers(snap)
    assert at(registers, 40229 + 2, 2) == [0xFFFF, 0xFFFF]  # GHI, POAI
    assert at(registers, 40236 + 3) == [0x8000]  # TmpBOM
    assert snap.wind_speed_m_s is not None
    assert at(registers, 40236 + 5) == [round(snap.wind_speed_m_s)]
    assert at(registers, 40070 + 31, 2) == [0x8000, 0]  # DCW not implemented, its DCW_SF still served


@pytest.mark.parametrize(("capacity_w", "power_sf", "energy_sf"), [
    (10_000, 0, 0), (48_000, 1, 0), (49_000, 1, 1), (1_000_000, 2, 2), (100_000_000, 4, 4)])
def test_scale_factors_follow_capacity(capacity_w: float, power_sf: int, energy_sf: int) -> None:
    image = SunSpecImage.for_plant(PlantKind.PV, capacity_w, serial="X")
    assert (image.power_sf, image.energy_sf) == (power_sf, energy_sf)
    assert 1.5 * capacity_w / 10**power_sf <= 0x7FFF
    assert capacity_w * 87_660 / 10**energy_sf < 2**32


def test_energy_registers_truncate_to_resolution_and_roll_over() -> None:
    image = SunSpecImage.for_plant(PlantKind.PV, 1_000_000, serial="X")
    assert image.energy_register(123_456_789) == 1_234_567  # hundreds of Wh, truncated
    assert SunSpecImage.for_plant(PlantKind.PV, 10_000, serial="X").energy_register(2**32 + 5) == 5


def test_absurd_power_saturates_the_register() -> None:
    plant = Plant(PlantConfig(PlantKind.PV, 3, capacity_w=10_000), START)
    spike = replace(plant.snapshot(START + 5 * HOUR), net_power_w=20 * 10_000)
    registers = SunSpecImage.for_plant(PlantKind.PV, 10_000, serial="X").registers(spike)
    assert signed(at(registers, 40122 + 18)[0]) == -0x7FFF
