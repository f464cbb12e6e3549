"""Servers the project installs and starts itself for the demo and the tests (Mosquitto, PostgreSQL, anvil)."""
