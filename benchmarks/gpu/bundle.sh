#!/usr/bin/env bash
# Build the wheels the GPU machine lacks into .whl/ (git-ignored; carried with `carry`).
# The device image has torch, sympy, networkx, click, pyyaml, numpy, pandas, seaborn, tqdm
# and matplotlib (device KINDS.md); only microsoft/mup is missing. mup is an sdist on the
# index, so it is built here into a pure-Python wheel.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .whl
python3 -m pip wheel -q --no-deps --no-build-isolation mup==1.0.0 -w .whl
ls -l .whl
