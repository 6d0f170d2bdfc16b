#!/usr/bin/env bash
# Sets up and runs the node on config.yaml (or the file given with --config).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m relay run "$@"
