#!/usr/bin/env bash
# Make ./.venv point at a virtualenv built from requirements.txt.
#
# The virtualenv lives outside the clone, keyed by the hash of requirements.txt,
# so a fresh clone (CI) reuses it instead of re-downloading torch and friends.
# Wheels are kept in a local wheelhouse ($CACHE_DIR/wheels): after a pin change
# only the changed wheels are downloaded (pip's HTTP cache does not keep the
# multi-gigabyte torch/CUDA wheels).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
CACHE_DIR="${APEX_CACHE_DIR:-$HOME/.cache/apex}"
HASH="$(cat requirements.txt | sha256sum | cut -c1-16)"
VENV="$CACHE_DIR/venvs/$HASH"

if [ ! -f "$VENV/.complete" ]; then
    echo "==> building virtualenv $VENV (first time for this requirements.txt)"
    rm -rf "$VENV"
    mkdir -p "$CACHE_DIR/venvs"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --upgrade pip
    mkdir -p "$CACHE_DIR/wheels"
    # "File was already downloaded" for every wheel already in the wheelhouse.
    "$VENV/bin/pip" download --progress-bar off --cache-dir "$CACHE_DIR/pip" \
        --dest "$CACHE_DIR/wheels" -r requirements.txt
    "$VENV/bin/pip" install --progress-bar off --no-index \
        --find-links "$CACHE_DIR/wheels" -r requirements.txt
    touch "$VENV/.complete"
fi

if [ "$(readlink .venv 2>/dev/null)" != "$VENV" ]; then
    rm -rf .venv
    ln -s "$VENV" .venv
fi
