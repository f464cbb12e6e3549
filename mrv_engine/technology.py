"""Generation technologies the methodologies distinguish (all are intermittent wind or solar)."""

from __future__ import annotations

import enum


class Technology(enum.StrEnum):
    SOLAR_PV = "solar_pv"
    WIND = "wind"
    OFFSHORE_WIND = "offshore_wind"
    SOLAR_THERMAL = "solar_thermal"
