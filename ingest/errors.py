"""What can go wrong on the server side of ingestion, one class per failure; CLIs print `str(error)`.

Refused envelopes are not errors here: they are quarantined with a `protocol.Reason`. These classes
are for the service itself (configuration, registry commands, migrations, an unreachable database).
Misuse by a caller stays `ValueError`.
"""

from __future__ import annotations


class IngestError(Exception):
    """Base of the ingest service's failures; the message says what failed and what to do."""


class ConfigError(IngestError):
    """The configuration file or an MRV_INGEST__ environment override is invalid."""


class RegistryError(IngestError):
    """A device registry command cannot be carried out."""


class EnrollmentRefused(RegistryError):
    """The key or device offered for enrollment or rotation is not acceptable."""


class UnknownDevice(RegistryError):
    """The device (or the key) named is not enrolled."""


class MigrationError(IngestError):
    """The schema cannot be brought to the expected version."""


class DatabaseUnavailable(IngestError):
    """PostgreSQL cannot be reached or the transaction failed for a transient reason; retry later."""
