#!/usr/bin/env bash
# Set up what is missing, then run the whole pipeline as a demo (`mrv up`); state goes to var/demo.
# Extra arguments go to `mrv up`, e.g.  scripts/demo.sh --minutes 5
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/mrv up "$@"
