"""`mrv console`: the operator console, a FastAPI service (JSON API under /api/v1, server-rendered pages)
over the ingest/anchoring database, with roles admin / operator / verifier. See app.py and cli.py."""
