"""Where the sun is and how much light reaches a tilted PV array.

Solar position from Spencer's (1971) series for declination and the equation of time (the NOAA
"general solar position" formulation, about 0.5° accurate: ample for energy simulation). Clear-sky
global horizontal irradiance from Haurwitz (1945); its split into beam and diffuse from the Erbs
(1982) correlation; plane-of-array irradiance by isotropic-sky (Liu-Jordan) transposition.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

SOLAR_CONSTANT_W_M2 = 1361.0


@dataclass(frozen=True, slots=True)
class SunPosition:
    elevation_deg: float  # above the horizon; negative at night
    azimuth_deg: float  # clockwise from north: 90 east, 180 south
    extraterrestrial_w_m2: float  # normal-incidence irradiance at the top of the atmosphere

    @property
    def cos_zenith(self) -> float:
        return math.sin(math.radians(self.elevation_deg))


def sun_position(lat_deg: float, lon_deg: float, t_ms: int) -> SunPosition:
    """The sun seen from (lat, lon) (degrees, east positive) at Unix time `t_ms` (UTC)."""
    tm = time.gmtime(t_ms // 1000)
    hour = tm.tm_hour + tm.tm_min / 60 + (tm.tm_sec + (t_ms % 1000) / 1000) / 3600
    gamma = 2 * math.pi / 365 * (tm.tm_yday - 1 + (hour - 12) / 24)  # fractional year, radians
    eot_min = 229.18 * (0.000075 + 0.001868 * math.cos(gamma) - 0.032077 * math.sin(gamma)
                        - 0.014615 * math.cos(2 * gamma) - 0.040849 * math.sin(2 * gamma))
    decl = (0.006918 - 0.399912 * math.cos(gamma) + 0.070257 * math.sin(gamma)
            - 0.006758 * math.cos(2 * gamma) + 0.000907 * math.sin(2 * gamma)
            - 0.002697 * math.cos(3 * gamma) + 0.00148 * math.sin(3 * gamma))
    true_solar_min = hour * 60 + eot_min + 4 * lon_deg
    hour_angle = math.radians(true_solar_min / 4 - 180)
    lat = math.radians(lat_deg)
    sin_elev = math.sin(lat) * math.sin(decl) + math.cos(lat) * math.cos(decl) * math.cos(hour_angle)
    elevation = math.degrees(math.asin(max(-1.0, min(1.0, sin_elev))))
    # Azimuth from south (Meeus), turned to "from north"; atan2 keeps the quadrant right.
    azimuth = math.degrees(math.atan2(math.sin(hour_angle),
                                      math.cos(hour_angle) * math.sin(lat) - math.tan(decl) * math.cos(lat)))
    eccentricity = 1 + 0.033 * math.cos(2 * math.pi * tm.tm_yday / 365)
    return SunPosition(elevation, (azimuth + 180) % 360, SOLAR_CONSTANT_W_M2 * eccentricity)


def clear_sky_ghi(sun: SunPosition) -> float:
    """Global horizontal irradiance under a cloudless sky (Haurwitz), W/m²; 0 at night."""
    cz = sun.cos_zenith
    return 1098.0 * cz * math.exp(-0.059 / cz) if cz > 0 else 0.0


def split_ghi(ghi: float, sun: SunPosition) -> tuple[float, float]:
    """(direct normal, diffuse horizontal) irradiance from GHI by the Erbs correlation, W/m²."""
    cz = sun.cos_zenith
    # Below ~3° elevation the beam share is meaningless (dividing by a tiny cos z): all diffuse.
    if ghi <= 0 or cz < 0.05:
        return 0.0, max(ghi, 0.0)
    kt = min(ghi / (sun.extraterrestrial_w_m2 * cz), 1.0)  # clearness index
    if kt <= 0.22:
        diffuse_fraction = 1 - 0.09 * kt
    elif kt <= 0.8:
        diffuse_fraction = 0.9511 - 0.1604 * kt + 4.388 * kt**2 - 16.638 * kt**3 + 12.336 * kt**4
    else:
        diffuse_fraction = 0.165
    dhi = diffuse_fraction * ghi
    return (ghi - dhi) / cz, dhi


def plane_of_array(ghi: float, sun: SunPosition, *, tilt_deg: float, azimuth_deg: float,
                   albedo: float) -> float:
    """Irradiance on a plane tilted `tilt_deg` facing `azimuth_deg` (isotropic sky), W/m²."""
    if ghi <= 0:
        return 0.0
    dni, dhi = split_ghi(ghi, sun)
    tilt = math.radians(tilt_deg)
    zenith = math.radians(90 - sun.elevation_deg)
    relative_azimuth = math.radians(sun.azimuth_deg - azimuth_deg)
    cos_incidence = (math.cos(zenith) * math.cos(tilt)
                     + math.sin(zenith) * math.sin(tilt) * math.cos(relative_azimuth))
    beam = dni * max(cos_incidence, 0.0)
    sky = dhi * (1 + math.cos(tilt)) / 2
    ground = ghi * albedo * (1 - math.cos(tilt)) / 2
    return beam + sky + ground
