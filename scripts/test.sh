#!/usr/bin/env bash
# Set up what is missing, then lint, type-check and run the test suite (real servers included).
# Extra arguments go to pytest, e.g.  scripts/test.sh --full  or  scripts/test.sh tests/protocol
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy --strict protocol anchoring
.venv/bin/pytest "$@"
