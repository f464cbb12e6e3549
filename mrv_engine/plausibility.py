"""Plausibility checks against fabricated or faulty data: vectorised, each returning flags with evidence.

The checks work on register steps (`registers.RegisterSteps`: consecutive usable readings and the energy
between them) and on instantaneous samples. Consecutive flagged steps merge into one flag whose span
runs from the first step's start to the last step's end and whose evidence sums them. A flag's
`export_cap_w` tells `net_generation` what to do with the device's export in the span: 0 excludes it,
a positive value bounds it to that mean power, None only reports.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from mrv_engine.registers import RegisterSteps, StepKind
from mrv_engine.results import EvidenceValue, Flag, FlagCode, Register
from mrv_engine.series import F64, I64, ArrivalSeries, SampleSeries
from mrv_engine.timespan import Span
from mrv_engine.units import MS_PER_DAY, MS_PER_HOUR

Mask = NDArray[np.bool_]
STC_IRRADIANCE_W_M2 = 1000.0  # the irradiance at which PV nameplate capacity is rated
# Solar position is judged only over steps up to this long: longer ones may hide a sunrise.
MAX_NIGHT_STEP_MS = 2 * MS_PER_HOUR
_FNV_PRIME = 1099511628211
# The sun's elevation changes by at most 15°/h (its daily circle; NOAA's formulas give 0.2501°/min at most
# over a year at any latitude): 0.3°/min bounds it with room, judged on a 10-minute grid.
SUN_DEG_PER_MS = 0.3 / 60_000
SUN_GRID_MS = 10 * 60_000


def _run_bounds(mask: Mask) -> tuple[I64, I64]:
    """Start and stop (exclusive) indices of the True runs of `mask`."""
    if not mask.any():  # the usual case: nothing flagged
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _runs(mask: Mask) -> list[tuple[int, int]]:
    starts, stops = _run_bounds(mask)
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def _cover(size: int, starts: I64, stops: I64) -> Mask:
    """A mask of `size` that is True inside any of the (possibly overlapping) ranges [start, stop)."""
    cover = np.zeros(size + 1, dtype=np.int64)
    np.add.at(cover, starts, 1)
    np.add.at(cover, stops, -1)
    return np.asarray(np.cumsum(cover)[:-1] > 0)


def _long_runs(mask: Mask, min_length: int) -> Mask:
    """`mask` keeping only the runs of at least `min_length`."""
    starts, stops = _run_bounds(mask)
    keep = stops - starts >= min_length
    return _cover(mask.size, starts[keep], stops[keep])


def _step_flags(code: FlagCode, device_id: str, steps: RegisterSteps, mask: Mask, *,
                export_cap_w: float | None, context: dict[str, EvidenceValue] | None = None,
                **per_step: NDArray[np.generic]) -> list[Flag]:
    """One flag per run of flagged steps: `context` as evidence, plus each `per_step` array summed over
    the run."""
    flags = []
    for start, stop in _runs(mask):
        evidence: dict[str, EvidenceValue] = {**(context or {}), "intervals": stop - start}
        for name, values in per_step.items():
            total = values[start:stop].sum()
            evidence[name] = int(total) if np.issubdtype(values.dtype, np.integer) else round(float(total), 3)
        flags.append(Flag.make(code, device_id, Span(int(steps.t0[start]), int(steps.t1[stop - 1])),
                               export_cap_w=export_cap_w, **evidence))
    return flags


def _hours(steps: RegisterSteps) -> F64:
    return (steps.t1 - steps.t0) / MS_PER_HOUR


def _step_means(steps: RegisterSteps, samples: SampleSeries, values: F64 | None = None) -> tuple[F64, Mask]:
    """Mean of the samples in each step [t0, t1) (of `values`, if given, instead of the samples' own),
    and whether the step has any sample."""
    v = samples.values if values is None else values
    if np.array_equal(samples.timestamps_ms, steps.times_ms):  # a sample at each reading, the usual case
        return v[:-1], np.ones(steps.delta_wh.size, dtype=np.bool_)
    lo = np.searchsorted(samples.timestamps_ms, steps.t0, side="left")
    hi = np.searchsorted(samples.timestamps_ms, steps.t1, side="left")
    cumulative = np.concatenate(([0.0], np.cumsum(v)))
    count = hi - lo
    has = count > 0
    mean = np.divide(cumulative[hi] - cumulative[lo], count, out=np.zeros(count.size), where=has)
    return mean, has


def above_nameplate(device_id: str, steps: RegisterSteps, capacity_w: float, tolerance: float) -> list[Flag]:
    """Export energy above nameplate × interval (plus tolerance); bounded to nameplate."""
    nameplate_wh = capacity_w * _hours(steps)
    mask = steps.counted & (steps.delta_wh > nameplate_wh * (1 + tolerance))
    return _step_flags(FlagCode.ABOVE_NAMEPLATE, device_id, steps, mask, export_cap_w=capacity_w,
                       measured_wh=steps.delta_wh, nameplate_wh=np.floor(nameplate_wh).astype(np.int64))


def register_discontinuities(device_id: str, steps: RegisterSteps, register: Register) -> list[Flag]:
    """Decreases of a cumulative register: resets and meter replacements, and rollovers (reported)."""
    flags = []
    for kind, code in ((StepKind.RESET, FlagCode.REGISTER_RESET),
                       (StepKind.ROLLOVER, FlagCode.REGISTER_ROLLOVER)):
        for i in np.flatnonzero(steps.kind == kind):
            flags.append(Flag.make(code, device_id, Span(int(steps.t0[i]), int(steps.t1[i])),
                                   register=register, before_wh=int(steps.values_wh[i]),
                                   after_wh=int(steps.values_wh[i + 1])))
    return flags


def flat_line(device_id: str, steps: RegisterSteps, min_intervals: int) -> list[Flag]:
    """The same non-zero energy in at least `min_intervals` consecutive equal-length steps; excluded."""
    delta, duration = steps.delta_wh, steps.t1 - steps.t0
    if delta.size < min_intervals:
        return []
    positive = steps.counted & (delta > 0)
    same = positive[:-1] & positive[1:] & (delta[:-1] == delta[1:]) & (duration[:-1] == duration[1:])
    # a run of n equal neighbours is n + 1 equal steps
    long = _long_runs(same, min_intervals - 1)
    mask = np.concatenate((long, [False])) | np.concatenate(([False], long))
    return _step_flags(FlagCode.FLAT_LINE, device_id, steps, mask, export_cap_w=0.0, measured_wh=delta)


def frozen_register(device_id: str, steps: RegisterSteps, power: SampleSeries, *, min_intervals: int,
                    min_power_w: float, register: Register) -> list[Flag]:
    """A register unchanged for `min_intervals` steps while power flows its way (export: power above
    `min_power_w`; import: below −`min_power_w`); export in the span is excluded."""
    mean_power, has = _step_means(steps, power)
    flowing = mean_power > min_power_w if register == "export" else mean_power < -min_power_w
    frozen = steps.counted & (steps.delta_wh == 0) & has & flowing
    return _step_flags(FlagCode.FROZEN_REGISTER, device_id, steps, _long_runs(frozen, min_intervals),
                       export_cap_w=0.0, context={"register": register},
                       unmeasured_wh=np.abs(mean_power) * _hours(steps))


def impossible_ramp(device_id: str, power: SampleSeries, max_w_per_minute: float) -> list[Flag]:
    """Power changing faster than `max_w_per_minute` between consecutive samples; export excluded."""
    times, values = power.timestamps_ms, power.values
    step = np.abs(np.diff(values))
    allowed = max_w_per_minute * np.diff(times) / 60_000
    flags = []
    for start, stop in _runs(step > allowed):
        flags.append(Flag.make(FlagCode.IMPOSSIBLE_RAMP, device_id, Span(int(times[start]), int(times[stop])),
                               export_cap_w=0.0, changes=stop - start,
                               largest_change_w=round(float(step[start:stop].max()), 3),
                               allowed_w_per_minute=round(max_w_per_minute, 3)))
    return flags


def solar_elevation_deg(latitude: float, longitude: float, t_ms: I64) -> F64:
    """Sun elevation above the horizon (degrees), NOAA's low-precision formulas (about ±0.5°)."""
    frac_day = (t_ms - t_ms.astype("datetime64[ms]").astype("datetime64[Y]").astype("datetime64[ms]")
                .astype(np.int64)) / MS_PER_DAY
    gamma = 2 * np.pi / 365 * (frac_day - 0.5)
    eqtime_min = 229.18 * (0.000075 + 0.001868 * np.cos(gamma) - 0.032077 * np.sin(gamma)
                           - 0.014615 * np.cos(2 * gamma) - 0.040849 * np.sin(2 * gamma))
    declination = (0.006918 - 0.399912 * np.cos(gamma) + 0.070257 * np.sin(gamma)
                   - 0.006758 * np.cos(2 * gamma) + 0.000907 * np.sin(2 * gamma)
                   - 0.002697 * np.cos(3 * gamma) + 0.00148 * np.sin(3 * gamma))
    true_solar_min = (t_ms % MS_PER_DAY) / 60_000 + eqtime_min + 4 * longitude
    hour_angle = np.radians(true_solar_min / 4 - 180)
    lat = np.radians(latitude)
    cos_zenith = (np.sin(lat) * np.sin(declination)
                  + np.cos(lat) * np.cos(declination) * np.cos(hour_angle))
    return np.asarray(90 - np.degrees(np.arccos(np.clip(cos_zenith, -1, 1))), dtype=np.float64)


@functools.lru_cache(maxsize=64)
def _elevation_grid(latitude: float, longitude: float, first_cell: int, cells: int) -> F64:
    """Sun elevation at the starts of `cells` grid cells from `first_cell`: the meters of a site share it."""
    grid = solar_elevation_deg(latitude, longitude, (first_cell + np.arange(cells, dtype=np.int64)) * SUN_GRID_MS)
    grid.flags.writeable = False
    return grid


def _sun_surely_up(latitude: float, longitude: float, t_ms: I64, elevation_deg: float) -> Mask:
    """Times at which the sun is certainly at or above `elevation_deg`, judged from the elevation at the start
    of their `SUN_GRID_MS` grid cell less the most it can drop within the cell; the rest are undecided."""
    if not t_ms.size:
        return np.zeros(0, dtype=np.bool_)
    first = int(t_ms.min()) // SUN_GRID_MS
    cell = t_ms // SUN_GRID_MS - first
    grid = _elevation_grid(latitude, longitude, first, int(cell.max()) + 1)
    lowest = grid[cell] - SUN_DEG_PER_MS * (t_ms % SUN_GRID_MS)
    return np.asarray(lowest >= elevation_deg)


def pv_export_at_night(device_id: str, steps: RegisterSteps, latitude: float, longitude: float, *,
                       max_elevation_deg: float, tolerance_w: float) -> list[Flag]:
    """PV export while the sun is below `max_elevation_deg` at a step's start, middle and end; excluded."""
    t0, t1 = steps.t0, steps.t1
    mask = steps.counted & (t1 - t0 <= MAX_NIGHT_STEP_MS) & (steps.delta_wh > tolerance_w * _hours(steps))
    mask[mask] = ~_sun_surely_up(latitude, longitude, t0[mask], max_elevation_deg)  # daytime export: cheap
    candidates = np.flatnonzero(mask)  # the sun's position only matters where there is export
    c0, c1 = t0[candidates], t1[candidates]
    elevation = np.maximum.reduce([solar_elevation_deg(latitude, longitude, t)
                                   for t in (c0, (c0 + c1) // 2, c1)])
    mask[candidates] = elevation < max_elevation_deg
    return _step_flags(FlagCode.PV_EXPORT_AT_NIGHT, device_id, steps, mask, export_cap_w=0.0,
                       measured_wh=steps.delta_wh)


def pv_performance(device_id: str, steps: RegisterSteps, irradiance: SampleSeries, capacity_w: float, *,
                   pr_max: float | None, pr_min: float | None, min_irradiance_w_m2: float, slack_w: float
                   ) -> list[Flag]:
    """PV export against what the measured plane-of-array irradiance allows: above `pr_max` (plus slack)
    it is excluded, which also catches export at zero irradiance; below `pr_min` at meaningful
    irradiance it is reported (curtailment or a faulty sensor)."""
    mean_irradiance, has = _step_means(steps, irradiance)
    hours = _hours(steps)
    reference_wh = capacity_w * mean_irradiance / STC_IRRADIANCE_W_M2 * hours
    flags = []
    if pr_max is not None:
        bound_wh = reference_wh * pr_max + slack_w * hours
        high = steps.counted & has & (steps.delta_wh > bound_wh)
        flags += _step_flags(FlagCode.PV_ABOVE_IRRADIANCE, device_id, steps, high, export_cap_w=0.0,
                             measured_wh=steps.delta_wh, bound_wh=np.floor(bound_wh).astype(np.int64))
    if pr_min is not None:
        low = (steps.counted & has & (mean_irradiance >= min_irradiance_w_m2)
               & (steps.delta_wh < reference_wh * pr_min))
        flags += _step_flags(FlagCode.PV_BELOW_IRRADIANCE, device_id, steps, low, export_cap_w=None,
                             measured_wh=steps.delta_wh, reference_wh=np.floor(reference_wh).astype(np.int64))
    return flags


def wind_above_power_curve(device_id: str, steps: RegisterSteps, wind_speed: SampleSeries,
                           curve_speed_m_s: Sequence[float], curve_power_w: Sequence[float], *,
                           tolerance: float, slack_w: float) -> list[Flag]:
    """Export above the power curve at the measured wind speed (mean of the curve over the step's
    samples, which is never below the curve at the mean speed where the curve is convex); excluded."""
    curve_power = np.interp(wind_speed.values, np.asarray(curve_speed_m_s), np.asarray(curve_power_w),
                            left=0.0)
    mean_power, has = _step_means(steps, wind_speed, curve_power)
    hours = _hours(steps)
    bound_wh = mean_power * (1 + tolerance) * hours + slack_w * hours
    mask = steps.counted & has & (steps.delta_wh > bound_wh)
    return _step_flags(FlagCode.WIND_ABOVE_POWER_CURVE, device_id, steps, mask, export_cap_w=0.0,
                       measured_wh=steps.delta_wh, bound_wh=np.floor(bound_wh).astype(np.int64))


def _window_hashes(delta: I64, starts: I64, window: int) -> NDArray[np.uint64]:
    """A polynomial hash (mod 2**64) of the `window` energies from each of `starts`."""
    values = delta.astype(np.uint64)
    hashes = np.zeros(starts.size, dtype=np.uint64)
    for j in range(window):
        hashes += values[starts + j] * np.uint64(pow(_FNV_PRIME, window - 1 - j, 2**64))
    return hashes


def _per_window(mask: Mask, window: int) -> I64:
    """How many of each `window` consecutive entries of `mask` are True (one pass of cumulative sums)."""
    counts = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
    return np.asarray(counts[window:] - counts[:-window], dtype=np.int64)


def _valid_windows(steps: RegisterSteps, window: int, min_power_w: float) -> I64:
    """Start indices of the windows worth comparing: all positive, not constant, no reset, and at least
    `min_power_w` on average (two honest devices can share nights, caps or a trickle)."""
    delta = steps.delta_wh
    if delta.size < window:
        return np.zeros(0, dtype=np.int64)
    duration = steps.t1[window - 1:] - steps.t0[:delta.size - window + 1]
    sums = np.concatenate(([0], np.cumsum(delta)))
    valid = ((_per_window(delta > 0, window) == window)
             & (_per_window(delta[1:] != delta[:-1], window - 1) > 0)  # not constant
             & (_per_window(steps.kind != StepKind.NORMAL, window) == 0)
             & (sums[window:] - sums[:-window] >= min_power_w * duration / MS_PER_HOUR))
    return np.flatnonzero(valid)


def duplicated_patterns(devices: Sequence[tuple[str, RegisterSteps, float]], window: int) -> list[Flag]:
    """The same sequence of `window` interval energies on two devices (a copied or replayed series),
    aligned in time or not. `devices` holds (device id, steps, min mean power in W for a window to
    count). Windows are hashed to find candidates, and a candidate counts only if its energies equal
    those of its hash group's first window: a hash is never trusted. Both devices' export in the matched
    spans is excluded."""
    if not devices:
        return []
    candidates = [_valid_windows(steps, window, min_power_w) for _, steps, min_power_w in devices]
    owners = np.concatenate([np.full(c.size, i, dtype=np.int64) for i, c in enumerate(candidates)])
    offsets = np.cumsum([0] + [steps.delta_wh.size for _, steps, _ in devices])
    energies = np.concatenate([steps.delta_wh for _, steps, _ in devices])
    positions = offsets[owners] + np.concatenate(candidates)  # window starts in `energies`
    hashes = np.concatenate([_window_hashes(steps.delta_wh, c, window)
                             for (_, steps, _), c in zip(devices, candidates, strict=True)])
    # Only windows whose hash occurs more than once can match: find those with one plain sort (much faster
    # than an argsort of every window) and group just them.
    ordered = np.sort(hashes)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if not repeated.size:
        return []
    repeated = np.unique(repeated)
    shared_windows = np.flatnonzero(repeated[np.clip(np.searchsorted(repeated, hashes), 0, repeated.size - 1)]
                                    == hashes)
    owners, positions, hashes = owners[shared_windows], positions[shared_windows], hashes[shared_windows]
    order = np.argsort(hashes, kind="stable")
    new_group = np.concatenate(([True], hashes[order][1:] != hashes[order][:-1]))
    group = np.cumsum(new_group) - 1
    head = np.flatnonzero(new_group)[group]
    shared = np.concatenate((~new_group[1:], [False])) | ~new_group  # members of groups of two or more
    members, group, head = order[shared], group[shared], order[head[shared]]
    offsets_in_window = np.arange(window)
    same = np.all(energies[positions[members, None] + offsets_in_window]
                  == energies[positions[head, None] + offsets_in_window], axis=1)
    members, group = members[same], group[same]
    pairs = np.unique(np.stack((group, owners[members]), axis=1), axis=0)  # (group, owner), distinct
    groups, owner_count = np.unique(pairs[:, 0], return_counts=True)
    across = np.isin(group, groups[owner_count > 1])
    flags = []
    for owner in np.unique(owners[members[across]]).tolist():
        device_id, steps, _ = devices[owner]
        mine = across & (owners[members] == owner)
        others = set(pairs[np.isin(pairs[:, 0], group[mine]), 1].tolist()) - {owner}
        first = positions[members[mine]] - offsets[owner]
        flags += _step_flags(FlagCode.DUPLICATED_PATTERN, device_id, steps,
                             _cover(steps.delta_wh.size, first, first + window), export_cap_w=0.0,
                             context={"matched_devices": ",".join(sorted(devices[o][0] for o in others))},
                             measured_wh=steps.delta_wh)
    return flags


def clock_skew(device_id: str, arrivals: ArrivalSeries, *, max_ahead_ms: int, max_behind_ms: int | None
               ) -> list[Flag]:
    """Envelopes whose device time is ahead of their arrival by more than `max_ahead_ms` (or, when set,
    behind it by more than `max_behind_ms`); the device's export in their span is excluded."""
    skew = arrivals.device_time_ms - arrivals.arrival_ms
    mask = skew > max_ahead_ms
    if max_behind_ms is not None:
        mask |= -skew > max_behind_ms
    times = arrivals.device_time_ms
    return [Flag.make(FlagCode.CLOCK_SKEW, device_id, Span(int(times[start]), int(times[stop - 1])),
                      export_cap_w=0.0, envelopes=stop - start, largest_ahead_ms=int(skew[start:stop].max()),
                      largest_behind_ms=int(-skew[start:stop].min()))
            for start, stop in _runs(mask)]
