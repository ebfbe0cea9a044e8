#!/usr/bin/env bash
# How traces/host-recorded-v1 was made: `adascale-rl record` at 1 s while a fixed schedule of
# real processes loads this machine. Offsets are seconds after the recorder was started
# (the loads start within ~1 s of the nominal offset). Needs stress-ng (Debian: apt-get install stress-ng)
# and a psutil sdist in $SDIST for the compile phases (pip download --no-binary :all: --no-deps psutil==7.2.2).
set -u
OUT=${OUT:-traces/host-recorded-v1}
AR=${AR:-adascale-rl}
PY=${PY:-python}
SDIST=${SDIST:-/tmp/sdist/psutil-7.2.2.tar.gz}
BUILD=$(mktemp -d)

compile_loop() {  # build the psutil C extension from its sdist again and again for $1 seconds
  timeout "$1" bash -c "while true; do $PY -m pip wheel -q --no-deps --no-build-isolation --no-cache-dir '$SDIST' -w '$BUILD' >/dev/null 2>&1; done"
}
busy_python() {   # one pure-Python busy loop for $1 seconds
  timeout "$1" $PY -c "
while True:
    sum(i * i for i in range(100000))" || true
}
grow_python() {   # a Python process that allocates $2 GiB in 256 MiB steps over ~$1 seconds, then holds it
  timeout "$1" $PY -c "
import time
blocks = []
steps = int($2 * 4)
for i in range(steps):
    blocks.append(bytearray(256 * 2**20))
    time.sleep(max(($1 - 5) / steps, 0.1))
time.sleep(3600)" || true
}

run() {  # run <split> <name> <duration> <note> <schedule function>; ONLY="name ..." runs a subset
  if [ -n "${ONLY:-}" ] && [[ " $ONLY " != *" $2 "* ]]; then return 0; fi
  $AR record --duration "$3" --interval 1 --out "$OUT" --split "$1" --name "$2" --note "$4" --no-progress &
  local rec=$!
  sleep 1
  "$5"
  wait "$rec"
}

cpu_ramp() {
  sleep 19
  stress-ng --cpu 1 --timeout 30s --quiet                      # 20-50: 1 CPU hog
  sleep 10                                                      # 50-60 idle
  stress-ng --cpu 2 --timeout 30s --quiet                      # 60-90: 2 CPU hogs (all cores)
  sleep 10                                                      # 90-100 idle
  stress-ng --cpu 4 --timeout 40s --quiet                      # 100-140: 4 hogs on 2 cores
  sleep 10                                                      # 140-150 idle
  stress-ng --cpu 2 --cpu-load 50 --timeout 30s --quiet        # 150-180: 2 workers at 50 % duty
}
memory_compile() {
  sleep 14
  stress-ng --vm 1 --vm-bytes 8G --vm-keep --timeout 45s --quiet   # 15-60: 8 GiB resident, 1 worker
  sleep 15                                                          # 60-75 idle
  compile_loop 75                                                   # 75-150: repeated C extension builds
  grow_python 30 6 &                                                # 150-180: Python grows to 6 GiB ...
  local grow=$!
  busy_python 30                                                    # ... next to a busy Python loop
  wait "$grow"
}
mixed() {
  sleep 9
  stress-ng --cpu 2 --cpu-load 30 --vm 2 --vm-bytes 2G --timeout 40s --quiet  # 10-50: light CPU + 4 GiB churn
  sleep 10                                                                     # 50-60 idle
  stress-ng --matrix 1 --timeout 30s --quiet                                  # 60-90: matrix multiply, 1 worker
  busy_python 20 &                                                             # 90-110: busy Python ...
  local busy=$!
  compile_loop 20                                                              # ... next to compiling
  wait "$busy"
  sleep 10                                                                     # 110-120 idle
  stress-ng --cpu 1 --cpu-load 80 --vm 1 --vm-bytes 12G --vm-keep --timeout 30s --quiet  # 120-150
}
held_out() {
  sleep 9
  busy_python 25 &                                                             # 10-35: busy Python ...
  local busy=$!
  stress-ng --cpu 1 --cpu-method matrixprod --timeout 25s --quiet             # ... and a matrix-product hog
  wait "$busy"
  sleep 10                                                                     # 35-45 idle
  stress-ng --vm 2 --vm-bytes 5G --vm-keep --timeout 30s --quiet              # 45-75: 10 GiB resident
  compile_loop 25                                                              # 75-100: compiling
  stress-ng --cpu 3 --cpu-load 60 --timeout 20s --quiet                       # 100-120: 3 workers at 60 %
}

run train cpu-ramp 180 "stress-ng --cpu 1 at 20-50 s, --cpu 2 at 60-90 s, --cpu 4 at 100-140 s, --cpu 2 --cpu-load 50 at 150-180 s; idle between" cpu_ramp
run train memory-compile 180 "stress-ng --vm 1 --vm-bytes 8G --vm-keep at 15-60 s; repeated 'pip wheel --no-build-isolation' builds of the psutil 7.2.2 sdist (C extension, gcc) at 75-150 s; at 150-180 s a Python process growing to 6 GiB in 256 MiB steps next to a busy pure-Python loop; idle 0-15 and 60-75 s" memory_compile
run train mixed 150 "stress-ng --cpu 2 --cpu-load 30 --vm 2 --vm-bytes 2G at 10-50 s; stress-ng --matrix 1 at 60-90 s; busy Python loop plus repeated psutil sdist builds at 90-110 s; stress-ng --cpu 1 --cpu-load 80 --vm 1 --vm-bytes 12G --vm-keep at 120-150 s; idle 0-10, 50-60, 110-120 s" mixed
run test held-out 120 "busy Python loop plus stress-ng --cpu 1 --cpu-method matrixprod at 10-35 s; stress-ng --vm 2 --vm-bytes 5G --vm-keep at 45-75 s; repeated psutil sdist builds at 75-100 s; stress-ng --cpu 3 --cpu-load 60 at 100-120 s; idle 0-10 and 35-45 s" held_out
rm -rf "$BUILD"
