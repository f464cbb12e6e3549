"""Methodology plugins by id, and the configuration section that selects one."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from mrv_engine.methodologies.acm0002 import Acm0002, Acm0002Params
from mrv_engine.methodologies.ams_i_d import AmsId, AmsIdParams
from mrv_engine.methodologies.base import Methodology, MethodologyParams, PeriodInputs, ProjectFacts
from mrv_engine.methodologies.ccer_01_001 import AuxiliaryFuel, Ccer01001, Ccer01001Params
from mrv_engine.methodologies.ccer_01_002 import Ccer01002, Ccer01002Params

METHODOLOGIES: dict[str, type[Methodology[Any]]] = {
    plugin.id: plugin for plugin in (Acm0002, AmsId, Ccer01002, Ccer01001)
}

MethodologyConfig = Annotated[Acm0002Params | AmsIdParams | Ccer01002Params | Ccer01001Params,
                              Field(discriminator="id")]


def methodology_for(params: MethodologyParams) -> Methodology[Any]:
    """The plugin configured by `params` (its `id` selects the class)."""
    try:
        plugin = METHODOLOGIES[params.id]
    except KeyError:
        raise ValueError(f"unknown methodology {params.id!r}; known: {', '.join(METHODOLOGIES)}") from None
    if not isinstance(params, plugin.params_model):
        raise ValueError(f"{params.id} takes {plugin.params_model.__name__}, not {type(params).__name__}")
    return plugin(params)


__all__ = [
    "METHODOLOGIES",
    "Acm0002",
    "Acm0002Params",
    "AmsId",
    "AmsIdParams",
    "AuxiliaryFuel",
    "Ccer01001",
    "Ccer01001Params",
    "Ccer01002",
    "Ccer01002Params",
    "Methodology",
    "MethodologyConfig",
    "MethodologyParams",
    "PeriodInputs",
    "ProjectFacts",
    "methodology_for",
]
