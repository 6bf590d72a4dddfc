#!/usr/bin/env bash
# Wall time of one whole `spectac correct` process (start-up included), two source trees in turn,
# so that the load of the machine falls on both alike. Usage:
#   OLD_SRC=path/to/old/src NEW_SRC=src NC=study_nc.nii.gz bash benchmarks/correct_side_by_side.sh
set -u
OLD_SRC=${OLD_SRC:?give OLD_SRC}; NEW_SRC=${NEW_SRC:-src}; NC=${NC:?give NC}; PY=${PY:-python}
out=$(mktemp -d)
for round in 1 2 3 4 5; do
  for side in old new; do
    if [ $side = old ]; then src=$OLD_SRC; else src=$NEW_SRC; fi
    rm -f "$out/$side.nii.gz" "$out/$side.nii.gz.json"
    s=$(date +%s.%N)
    PYTHONPATH=$src SPECTAC_PROGRESS=0 "$PY" -m spectac.cli correct "$NC" -o "$out/$side.nii.gz" --method unet-gan3d-chang >/dev/null 2>&1
    e=$(date +%s.%N)
    echo "$side $(echo "$e - $s" | bc)"
  done
done
rm -rf "$out"
