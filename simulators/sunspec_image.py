"""A plant snapshot as a SunSpec register map: what the simulated device serves over Modbus.

Pure: `SunSpecImage.registers(snapshot)` is the whole map from `BASE_ADDRESS`. Layout served
(addresses are Modbus PDU addresses, i.e. "40001" in 1-based documentation is 40000 here):

======= ============================= ==================================================
address  model                         contents
======= ============================= ==================================================
40000    "SunS" marker
40002    1 common (L=66)               Mn, Md (sim-pv / sim-wind), Vr, SN, DA
40070    103 three-phase inverter (50) W, WH, Hz, A, V, VA, PF, DCW (PV), TmpCab, St
40122    203 wye meter (105)           TotWhExp, TotWhImp, W (positive = import), Hz, A, V
40229    302 irradiance (5)            GHI, POAI (PV; "not implemented" for wind)
40236    308 mini met (4)              GHI, TmpBOM (PV), TmpAmb, WndSpd (wind)
40242    end (0xFFFF, 0)
======= ============================= ==================================================

Scale factors are fixed per plant (chosen from its capacity, as a device's firmware does): power so
that 1.5 × capacity fits an int16, energy so that ten years at nameplate fit an acc32, which for
plants up to 48 kW means 1 Wh resolution. Values beyond a register's range saturate at its limit.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.sources.sunspec_models import END_MODEL_ID, LAYOUTS, SUNS_MARKER, Raw, encode_model
from simulators.plant import PlantKind, PlantSnapshot

BASE_ADDRESS = 40000
MODELS = (1, 103, 203, 302, 308)
PHASE_VOLTAGE_V = 230.0
LINE_VOLTAGE_V = 400.0
INT16_MAX = 0x7FFF
ACC32_MAX = 0xFFFFFFFF
TEN_YEARS_H = 10 * 8766
MANUFACTURER = "mrv-ledger"

_ST_SLEEPING, _ST_MPPT, _ST_THROTTLED = 2, 4, 5  # inverter operating states (model 103 St)


def fit_scale_factor(largest: float, limit: int, *, lowest: int = -3) -> int:
    """The smallest exponent >= `lowest` at which `largest` fits in `limit` raw counts."""
    sf = lowest
    while largest / 10**sf > limit:
        sf += 1
    return sf


def _counts(value: float, sf: int) -> int:
    """`value` in raw register counts at scale factor `sf`."""
    return round(value * 10.0**-sf)


def _int16(value: float, sf: int) -> int:
    return max(-INT16_MAX, min(INT16_MAX, _counts(value, sf)))


def _uint16(value: float, sf: int = 0) -> int:
    return max(0, min(0xFFFE, _counts(value, sf)))


@dataclass(frozen=True)
class SunSpecImage:
    """Encodes snapshots of one plant; build it with `for_plant`."""

    kind: PlantKind
    serial: str
    power_sf: int  # W_SF, VA_SF, DCW_SF
    energy_sf: int  # WH_SF, TotWh_SF
    current_sf: int  # A_SF
    unit_id: int = 1

    @classmethod
    def for_plant(cls, kind: PlantKind, capacity_w: float, *, serial: str, initial_wh: int = 0,
                  unit_id: int = 1) -> SunSpecImage:
        lifetime_wh = initial_wh + capacity_w * TEN_YEARS_H
        peak_w = 1.5 * capacity_w
        return cls(kind, serial, power_sf=fit_scale_factor(peak_w, INT16_MAX, lowest=0),
                   energy_sf=fit_scale_factor(lifetime_wh, ACC32_MAX, lowest=0),
                   current_sf=fit_scale_factor(peak_w / PHASE_VOLTAGE_V, INT16_MAX, lowest=-2),
                   unit_id=unit_id)

    def registers(self, snap: PlantSnapshot) -> list[int]:
        """The map from BASE_ADDRESS to the end model, inclusive."""
        image = list(SUNS_MARKER)
        for model_id, values in ((1, self._common()), (103, self._inverter(snap)), (203, self._meter(snap)),
                                 (302, self._irradiance(snap)), (308, self._mini_met(snap))):
            image += encode_model(model_id, values)
        return [*image, END_MODEL_ID, 0]

    def energy_register(self, wh: int) -> int:
        """The raw acc32 for `wh`: truncated to the scale factor, rolled over at 2^32 like a meter."""
        resolution: int = 10**self.energy_sf
        return (wh // resolution) & ACC32_MAX

    def _common(self) -> dict[str, Raw]:
        return {"Mn": MANUFACTURER, "Md": f"sim-{self.kind}", "Vr": "1.0", "SN": self.serial,
                "DA": self.unit_id}

    def _inverter(self, snap: PlantSnapshot) -> dict[str, Raw]:
        w = snap.generation_w
        phase_a = w / 3 / PHASE_VOLTAGE_V
        state = _ST_THROTTLED if snap.clipped else _ST_MPPT if w > 0 else _ST_SLEEPING
        # A cabinet warms with load: ambient plus up to 15 K at nameplate.
        cabinet_c = snap.ambient_temperature_c + 15 * w / snap.capacity_w
        return {
            "A": _uint16(3 * phase_a, self.current_sf), "AphA": _uint16(phase_a, self.current_sf),
            "AphB": _uint16(phase_a, self.current_sf), "AphC": _uint16(phase_a, self.current_sf),
            "A_SF": self.current_sf,
            **dict.fromkeys(("PPVphAB", "PPVphBC", "PPVphCA"), _uint16(LINE_VOLTAGE_V, -1)),
            **dict.fromkeys(("PhVphA", "PhVphB", "PhVphC"), _uint16(PHASE_VOLTAGE_V, -1)), "V_SF": -1,
            "W": _int16(w, self.power_sf), "W_SF": self.power_sf,
            "Hz": _uint16(snap.frequency_hz, -2), "Hz_SF": -2,
            "VA": _int16(w, self.power_sf), "VA_SF": self.power_sf,
            "PF": 10000, "PF_SF": -2,  # unity power factor, in percent
            "WH": self.energy_register(snap.generation_wh), "WH_SF": self.energy_sf,
            "DCW": None if snap.dc_power_w is None else _int16(snap.dc_power_w, self.power_sf),
            "DCW_SF": self.power_sf,
            "TmpCab": _int16(cabinet_c, -1), "Tmp_SF": -1,
            "St": state, "Evt1": 0, "Evt2": 0,
        }

    def _meter(self, snap: PlantSnapshot) -> dict[str, Raw]:
        # SunSpec load convention: a positive meter W is power imported from the grid.
        w = -snap.net_power_w
        phase_w = w / 3
        phase_a = abs(phase_w) / PHASE_VOLTAGE_V
        return {
            "A": _int16(3 * phase_a, self.current_sf),
            **dict.fromkeys(("AphA", "AphB", "AphC"), _int16(phase_a, self.current_sf)),
            "A_SF": self.current_sf,
            **dict.fromkeys(("PhV", "PhVphA", "PhVphB", "PhVphC"), _int16(PHASE_VOLTAGE_V, -1)),
            **dict.fromkeys(("PPV", "PhVphAB", "PhVphBC", "PhVphCA"), _int16(LINE_VOLTAGE_V, -1)), "V_SF": -1,
            "Hz": _int16(snap.frequency_hz, -2), "Hz_SF": -2,
            "W": _int16(w, self.power_sf),
            **dict.fromkeys(("WphA", "WphB", "WphC"), _int16(phase_w, self.power_sf)), "W_SF": self.power_sf,
            "TotWhExp": self.energy_register(snap.export_wh),
            "TotWhImp": self.energy_register(snap.import_wh), "TotWh_SF": self.energy_sf, "Evt": 0,
        }

    def _irradiance(self, snap: PlantSnapshot) -> dict[str, Raw]:
        return {"GHI": _optional(snap.ghi_w_m2), "POAI": _optional(snap.irradiance_w_m2)}

    def _mini_met(self, snap: PlantSnapshot) -> dict[str, Raw]:
        return {
            "GHI": _optional(snap.ghi_w_m2),
            "TmpBOM": None if snap.module_temperature_c is None else _int16(snap.module_temperature_c, -1),
            "TmpAmb": _int16(snap.ambient_temperature_c, -1),
            "WndSpd": _optional(snap.wind_speed_m_s),
        }


def _optional(value: float | None) -> int | None:
    return None if value is None else _uint16(value)


def _model_addresses() -> dict[int, int]:
    address, addresses = BASE_ADDRESS + len(SUNS_MARKER), {}
    for model_id in (*MODELS, END_MODEL_ID):
        addresses[model_id] = address
        address += 2 + LAYOUTS[model_id].length if model_id in LAYOUTS else 2
    return addresses


MODEL_ADDRESSES = _model_addresses()  # model id (and END_MODEL_ID) -> address of its ID register
MAP_SIZE = MODEL_ADDRESSES[END_MODEL_ID] + 2 - BASE_ADDRESS  # registers from BASE_ADDRESS to the end model
