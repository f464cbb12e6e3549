"""The grid emission factor: combined margin and dataset entries, each with provenance."""

from __future__ import annotations

from mrv_engine import china_grid_factors, parse_grid_factors
from mrv_engine.emission_factor import resolve_grid_ef
from tests.mrv_engine.builders import config


def test_combined_margin_by_hand() -> None:
    # 0.75 × 0.8 + 0.25 × 0.4 = 0.6 + 0.1 = 0.7 tCO2/MWh
    values = resolve_grid_ef(config().grid_ef, china_grid_factors())
    assert [(v.name, v.value) for v in values] == [
        ("EF_grid", 0.7), ("EF_OM", 0.8), ("EF_BM", 0.4), ("w_OM", 0.75), ("w_BM", 0.25)]
    assert values[1].source == "PDD §B.6.3"


def test_dataset_entry_takes_value_and_source_from_the_table() -> None:
    project = config(grid_ef={"kind": "dataset", "year": 2022, "grid": "national", "column": "fossil_only"})
    (ef,) = resolve_grid_ef(project.grid_ef, china_grid_factors())
    assert ef.value == 0.8325
    assert "2022/national/fossil_only" in ef.source and "National Bureau of Statistics" in ef.source


def test_dataset_values_come_from_the_data_not_the_code() -> None:
    table = parse_grid_factors("year,grid,column,value,source\n2022,national,fossil_only,0.9,audit copy\n",
                               "alternative.csv")
    project = config(grid_ef={"kind": "dataset", "year": 2022, "grid": "national", "column": "fossil_only"})
    (ef,) = resolve_grid_ef(project.grid_ef, table)
    assert (ef.value, ef.source) == (0.9, "alternative.csv 2022/national/fossil_only: audit copy")
