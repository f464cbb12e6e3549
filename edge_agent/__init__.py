"""The gateway agent: meter sources -> signed envelopes in a durable outbox -> MQTT."""

from edge_agent.agent import Device, EdgeAgent
from edge_agent.clock import Clock, SimulatedClock, WallClock
from edge_agent.config import AgentSettings, DeviceConfig, EdgeConfig, MqttConfig, OutboxConfig, load_config
from edge_agent.errors import (
    AgentAlreadyRunning,
    ConfigError,
    EdgeError,
    InsecureSecretFile,
    InvalidKeyFile,
    KeyExists,
    OutboxError,
    SecretError,
    SecretNotFound,
)
from edge_agent.keystore import FileKeyStore, KeyStore
from edge_agent.outbox import Alarm, AlarmCode, AppendResult, Draft, Outbox, OutboxStatus, OverflowPolicy
from edge_agent.publisher import Publisher, PublishLoop

__all__ = [
    "AgentAlreadyRunning", "AgentSettings", "Alarm", "AlarmCode", "AppendResult", "Clock", "ConfigError",
    "Device", "DeviceConfig", "Draft", "EdgeAgent", "EdgeConfig", "EdgeError", "FileKeyStore",
    "InsecureSecretFile", "InvalidKeyFile", "KeyExists", "KeyStore", "MqttConfig", "Outbox", "OutboxConfig",
    "OutboxError", "OutboxStatus", "OverflowPolicy", "PublishLoop", "Publisher", "SecretError",
    "SecretNotFound", "SimulatedClock", "WallClock", "load_config",
]
