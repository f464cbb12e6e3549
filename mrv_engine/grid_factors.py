"""The grid emission factor dataset: (year, grid, column) -> value in tCO2/MWh, each with its source.

The packaged table `data/china_grid_ef.csv` holds the Chinese MEE/NBS average factors transcribed in
METHODOLOGY.md. Code never treats a factor as truth: a project selects an entry in its configuration,
and the entry's source travels with the value into the report.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

from mrv_engine.errors import DatasetError

_HEADER = ["year", "grid", "column", "value", "source"]


@dataclass(frozen=True)
class GridFactor:
    year: int
    grid: str
    column: str
    value: float  # tCO2/MWh
    source: str


class GridFactorTable:
    """An immutable lookup over grid factors; `origin` names the dataset in error messages."""

    def __init__(self, factors: list[GridFactor], origin: str) -> None:
        self.origin = origin
        self._by_key: dict[tuple[int, str, str], GridFactor] = {}
        for factor in factors:
            key = (factor.year, factor.grid, factor.column)
            if key in self._by_key:
                raise DatasetError(f"{origin}: duplicate entry for year {factor.year}, grid "
                                   f"{factor.grid!r}, column {factor.column!r}")
            self._by_key[key] = factor

    def __iter__(self) -> Iterator[GridFactor]:
        return iter(self._by_key.values())

    def lookup(self, year: int, grid: str, column: str) -> GridFactor:
        try:
            return self._by_key[(year, grid, column)]
        except KeyError:
            available = ", ".join(sorted(f"{y}/{g}/{c}" for y, g, c in self._by_key))
            raise DatasetError(f"{self.origin} has no factor for {year}/{grid}/{column}; "
                               f"available: {available}") from None


def parse_grid_factors(text: str, origin: str) -> GridFactorTable:
    """Parse the CSV form (header `year,grid,column,value,source`)."""
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != _HEADER:
        raise DatasetError(f"{origin}: the header must be {','.join(_HEADER)}")
    factors = []
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != len(_HEADER):
            raise DatasetError(f"{origin}:{line_no}: expected {len(_HEADER)} fields, got {len(row)}")
        year, grid, column, value, source = row
        try:
            factor = GridFactor(int(year), grid, column, float(value), source)
        except ValueError as e:
            raise DatasetError(f"{origin}:{line_no}: {e}") from None
        if not (math.isfinite(factor.value) and factor.value > 0) or not (grid and column and source):
            raise DatasetError(f"{origin}:{line_no}: needs a positive value, a grid, a column and a source")
        factors.append(factor)
    return GridFactorTable(factors, origin)


@functools.cache
def china_grid_factors() -> GridFactorTable:
    """The packaged Chinese grid factor table."""
    text = resources.files("mrv_engine").joinpath("data/china_grid_ef.csv").read_text(encoding="utf-8")
    return parse_grid_factors(text, "mrv_engine/data/china_grid_ef.csv")
