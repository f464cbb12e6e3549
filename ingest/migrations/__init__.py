"""The schema, as ordered SQL files applied by ingest.migrate (`mrv db migrate`)."""
