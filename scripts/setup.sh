#!/usr/bin/env bash
# Set up spectac in a virtual environment (.venv) on a fresh machine.
# torch is pinned and installed first: a looser range would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet "torch==2.13.0"
python -m pip install --quiet -e ".[test]"
echo "spectac installed in $(pwd)/.venv"
