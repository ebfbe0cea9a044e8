#!/usr/bin/env bash
# How traces/host-recorded-v2 was made: `adascale-rl record` at 1 s, each file beside a load schedule
# of envs/loads/ (busy processes and memory hogs that `record --load` starts as child processes and
# stops with the recording). Run from the repository root on an otherwise idle machine:
#   bash traces/host-recorded-v2/record.sh
set -eu
OUT=${OUT:-traces/host-recorded-v2}
AR=${AR:-adascale-rl}
$AR record --load host-train-ramp --out "$OUT" --split train --name cpu-ramp --no-progress
$AR record --load host-train-bursts --out "$OUT" --split train --name bursts --no-progress
$AR record --load host-train-memory --out "$OUT" --split train --name memory --no-progress
$AR record --load quiet-to-oversubscribed --out "$OUT" --split test --name quiet-to-oversubscribed --no-progress
