#!/usr/bin/env bash
# Image quality and clinical scores of every method on a dataset's test split (BENCHMARKS.md).
#
#   bash benchmarks/quality.sh DATASET RUN [METHODS...]
#
# Runs `spectac predict` for each method (NC, Chang, iterative Chang and every shipped network by
# default; existing predictions are kept) and `spectac evaluate` on the test split: RUN/table1.md,
# RUN/clinical_agreement.csv, RUN/detection.csv, RUN/report.html.
set -euo pipefail
DATA=${1:?usage: benchmarks/quality.sh DATASET RUN [METHODS...]}
RUN=${2:?usage: benchmarks/quality.sh DATASET RUN [METHODS...]}
shift 2
METHODS=("$@")
if [[ ${#METHODS[@]} -eq 0 ]]; then
  METHODS=(nc chang chang-iterative $(python -c "from spectac.demo import shipped_networks; print(' '.join(shipped_networks()))"))
fi
for method in "${METHODS[@]}"; do
  spectac predict --method "$method" --data "$DATA" --out "$RUN" --split test
done
spectac evaluate --data "$DATA" --run "$RUN" --split test
