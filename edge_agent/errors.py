"""What can go wrong in the edge agent, one class per reason; the CLI prints `str(error)` as one line.

Bad meter reads stay `edge_agent.sources.SourceError` (the sources' own domain) and refused envelope
contents stay `protocol.EnvelopeError`; misuse by a caller stays `ValueError`.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of the agent's failures; the message says what failed and what to do."""


class ConfigError(EdgeError):
    """The configuration file or an MRV_EDGE__ environment override is invalid."""


class SecretError(EdgeError):
    """A device key or broker password file cannot be used."""


class SecretNotFound(SecretError):
    """The key or password file does not exist."""


class InsecureSecretFile(SecretError):
    """The file is accessible to group or others; secrets must be mode 0600."""


class KeyExists(SecretError):
    """keygen refuses to overwrite an existing key: the device identity would change."""


class InvalidKeyFile(SecretError):
    """The key file is not a seed file of this agent, or belongs to another device."""


class OutboxError(EdgeError):
    """The outbox database cannot be opened or written (missing, corrupt, disk full)."""


class AgentAlreadyRunning(EdgeError):
    """Another agent holds the data directory's lock (two agents would publish the same devices)."""
