#!/usr/bin/env bash
# Fetch the offline datasets into data/ (idempotent). Filled in by the dataset loaders' issues.
set -euo pipefail
mkdir -p data
