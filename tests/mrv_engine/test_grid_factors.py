"""The packaged grid factor table equals METHODOLOGY.md, and the loader refuses malformed data."""

from __future__ import annotations

import pytest

from mrv_engine import DatasetError, china_grid_factors, parse_grid_factors

# Transcribed from METHODOLOGY.md ("China grid emission factors"), tCO2/MWh.
EXPECTED = {
    (2021, "national", "average"): 0.5568, (2021, "national", "fossil_only"): 0.8426,
    (2022, "national", "average"): 0.5366, (2022, "national", "excl_market_non_fossil"): 0.5856,
    (2022, "national", "fossil_only"): 0.8325,
    (2023, "national", "average"): 0.5306, (2023, "national", "excl_market_non_fossil"): 0.6096,
    (2023, "national", "fossil_only"): 0.8273,
    (2022, "north", "average"): 0.6776, (2023, "north", "average"): 0.6361,
    (2022, "northeast", "average"): 0.5564, (2023, "northeast", "average"): 0.5122,
    (2022, "east", "average"): 0.5617, (2023, "east", "average"): 0.5500,
    (2022, "central", "average"): 0.5395, (2023, "central", "average"): 0.5271,
    (2022, "northwest", "average"): 0.5857, (2023, "northwest", "average"): 0.5543,
    (2022, "south", "average"): 0.3869, (2023, "south", "average"): 0.4042,
    (2022, "southwest", "average"): 0.2268, (2023, "southwest", "average"): 0.2472,
}


def test_packaged_table_is_exactly_the_methodology_table() -> None:
    table = china_grid_factors()
    assert {(f.year, f.grid, f.column): f.value for f in table} == EXPECTED
    assert all("Ministry of Ecology and Environment" in f.source and str(f.year) in f.source for f in table)


def test_lookup_names_what_is_available() -> None:
    assert china_grid_factors().lookup(2023, "south", "average").value == 0.4042
    with pytest.raises(DatasetError, match="no factor for 2021/national/excl_market_non_fossil"):
        china_grid_factors().lookup(2021, "national", "excl_market_non_fossil")


@pytest.mark.parametrize("text, message", [
    ("year,grid,value\n", "header"),
    ("year,grid,column,value,source\n2023,east,average,0.55\n", "expected 5 fields"),
    ("year,grid,column,value,source\n2023,east,average,abc,src\n", "could not convert"),
    ("year,grid,column,value,source\n2023,east,average,-0.1,src\n", "positive value"),
    ("year,grid,column,value,source\n2023,east,average,0.5,\n", "a source"),
    ("year,grid,column,value,source\n2023,east,average,0.5,a\n2023,east,average,0.6,b\n", "duplicate"),
])
def test_malformed_datasets_are_refused(text: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_grid_factors(text, "test.csv")
