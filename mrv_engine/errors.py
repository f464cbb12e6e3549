"""Why the MRV engine refused to produce a number: one shallow hierarchy, one stable code per failure.

Errors here are about the project or its data (a configuration that cannot be credited, a missing
monitored value, a claim that would count one MWh twice). Misuse by a caller, such as arrays of the
wrong shape, stays `ValueError`.
"""

from __future__ import annotations


class MrvError(Exception):
    """Base of every MRV refusal. `code` is stable; `diagnostics()` is one line for a human."""

    code = "mrv_error"

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"{self.code}: {detail}")

    def diagnostics(self) -> str:
        return self.detail


class ConfigError(MrvError):
    """The project configuration is invalid or the project is not eligible under its methodology."""

    code = "config_invalid"


class DatasetError(MrvError):
    """A packaged or supplied dataset is malformed, or has no entry for the selection."""

    code = "dataset_error"


class MissingData(MrvError):
    """A monitored value the methodology needs is absent; the engine will not assume it."""

    code = "missing_data"


class PeriodOutsideCrediting(MrvError):
    """The monitoring period is not inside the project's crediting period."""

    code = "period_outside_crediting"


class DoubleClaimError(MrvError):
    """Crediting would count a MWh under two schemes, or a claim itself is malformed."""

    code = "double_claim"


class InvalidClaim(DoubleClaimError):
    code = "invalid_claim"


class UndeclaredScheme(DoubleClaimError):
    code = "undeclared_scheme"


class ClaimedElsewhere(DoubleClaimError):
    """Under the `refuse` policy: generation of the period is already claimed under another scheme."""

    code = "claimed_elsewhere"


class InvalidResult(MrvError):
    """A serialized period result is malformed or its carbon-asset identifier does not match its content."""

    code = "result_invalid"
