"""MRV engine: the pure methodology core. Configuration and period data in, period results out.

    config = load_project_config(tomllib.load(f))
    result = assess_period(config, PeriodData(period=Span(start_ms, end_ms), meters={...}, ...))
    result.to_dict()   # JSON-ready, with the carbon-asset identifier `result.asset_id`
"""

from mrv_engine.assessment import assess_period, screen
from mrv_engine.config import ProjectConfig, load_project_config
from mrv_engine.double_claim import Claim, ClaimPolicy, Scheme
from mrv_engine.errors import (
    ClaimedElsewhere,
    ConfigError,
    DatasetError,
    DoubleClaimError,
    InvalidClaim,
    InvalidResult,
    MissingData,
    MrvError,
    PeriodOutsideCrediting,
    UndeclaredScheme,
)
from mrv_engine.grid_factors import GridFactor, GridFactorTable, china_grid_factors, parse_grid_factors
from mrv_engine.methodologies import METHODOLOGIES, Methodology, PeriodInputs, methodology_for
from mrv_engine.net_generation import NetGeneration, Settlement
from mrv_engine.period_data import PeriodData
from mrv_engine.results import (
    Adjustment,
    AdjustmentCode,
    EnvelopeDigest,
    Flag,
    FlagCode,
    MeterSummary,
    ParameterValue,
    PeriodResult,
)
from mrv_engine.series import ArrivalSeries, MeterReadings, RegisterSeries, SampleSeries
from mrv_engine.technology import Technology
from mrv_engine.timespan import Span

__all__ = [
    "METHODOLOGIES",
    "Adjustment",
    "AdjustmentCode",
    "ArrivalSeries",
    "Claim",
    "ClaimPolicy",
    "ClaimedElsewhere",
    "ConfigError",
    "DatasetError",
    "DoubleClaimError",
    "EnvelopeDigest",
    "Flag",
    "FlagCode",
    "GridFactor",
    "GridFactorTable",
    "InvalidClaim",
    "InvalidResult",
    "MeterReadings",
    "MeterSummary",
    "Methodology",
    "MissingData",
    "MrvError",
    "NetGeneration",
    "ParameterValue",
    "PeriodData",
    "PeriodInputs",
    "PeriodOutsideCrediting",
    "PeriodResult",
    "ProjectConfig",
    "RegisterSeries",
    "SampleSeries",
    "Scheme",
    "Settlement",
    "Span",
    "Technology",
    "UndeclaredScheme",
    "assess_period",
    "china_grid_factors",
    "load_project_config",
    "methodology_for",
    "parse_grid_factors",
    "screen",
]
