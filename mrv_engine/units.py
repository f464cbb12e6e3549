"""Units, exact conversions and the rounding rule of every reported number.

Energy is integer Wh end to end. Emissions are computed in float64 from MWh (tCO2e = MWh × tCO2/MWh)
and reported as integer kilograms (0.001 tCO2e), rounded in the conservative direction:

* baseline emissions (BE) are rounded **down** to the kilogram;
* project emissions (PE) and leakage (LE) are rounded **up** to the kilogram;
* reductions ER = BE − PE − LE are then exact integer arithmetic on those kilograms;
* issuance units are whole tonnes: floor(ER / 1 t), and never negative.

Before the directed rounding, float noise below 1e-6 kg is removed (a value such as
1000 MWh × (0.75·0.8 + 0.25·0.4) = 700.0000000000001 t must report 700.000 t, not 700.001 t or 699.999 t).
Energy bounds are rounded the conservative way too: credited energy down, charged energy up.
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction

WH_PER_MWH = 1_000_000
MS_PER_HOUR = 3_600_000
MS_PER_DAY = 86_400_000
KG_PER_TONNE = 1000
# Carbon to CO2 mass ratio, molar masses 44/12 (IPCC).
CO2_PER_C = Fraction(44, 12)


def exact(value: float | int | str) -> Fraction:
    """The decimal value as written (0.21 is 21/100, not the nearest binary double)."""
    return Fraction(Decimal(str(value)))


def mwh(wh: int) -> float:
    return wh / WH_PER_MWH


def _denoised_kg(tonnes: float) -> float:
    return round(tonnes * KG_PER_TONNE, 6)


def kg_down(tonnes: float) -> int:
    """Tonnes to whole kilograms, rounded down (for quantities credited, such as BE)."""
    return math.floor(_denoised_kg(tonnes))


def kg_up(tonnes: float) -> int:
    """Tonnes to whole kilograms, rounded up (for quantities deducted, such as PE and LE)."""
    return math.ceil(_denoised_kg(tonnes))


def tonnes_text(kg: int) -> str:
    """Exact decimal text of a kilogram amount in tonnes: 86419 -> '86.419', -5 -> '-0.005'."""
    sign = "-" if kg < 0 else ""
    whole, milli = divmod(abs(kg), KG_PER_TONNE)
    return f"{sign}{whole}.{milli:03d}"


def kg_from_text(text: str) -> int:
    """Inverse of `tonnes_text`."""
    return int(Decimal(text) * KG_PER_TONNE)


def wh_from_mwh_down(value: float) -> int:
    return math.floor(exact(value) * WH_PER_MWH)


def wh_from_mwh_up(value: float) -> int:
    return math.ceil(exact(value) * WH_PER_MWH)
