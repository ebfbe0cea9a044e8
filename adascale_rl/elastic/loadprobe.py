"""Contention probe, run as ``python -m adascale_rl.elastic.loadprobe --threads N --shape ... FILE...``.

Times saved TorchScript variants the way an app runs them, in a fresh process with a fixed
thread count (see :mod:`.timeprobe` for why), in two modes, variants in a shuffled order
(per variant: warm-up calls, a pause, the open-loop mode, then back to back):

* ``b2b``: back to back, ``--calls`` batch-1 inferences one after the other (a saturated
  app: its thread never sleeps);
* ``rate``: open loop, requests arriving every ``1 / --rate`` s for ``--duration`` s; the
  thread sleeps until the next arrival and serves the latest one that has arrived (older
  ones are dropped, as a camera pipeline drops stale frames). Per request it records the
  service time (the inference call) and the response time (arrival to result).

Whatever else runs on the machine meanwhile (the busy processes :mod:`.contention` starts)
is the point. Prints one JSON object:
``{file: {"b2b": [ms...], "svc": [ms...], "resp": [ms...], "issued": n, "served": n}}``.
"""

from __future__ import annotations

import json
import sys
import time

from adascale_rl.elastic.timeprobe import load_probe, probe_parser

#: seconds the probe sleeps before each open-loop phase
PAUSE_S = 0.3


def serve_open_loop(call, rate_hz: float, duration_s: float) -> tuple[list[float], list[float], int, int]:
    """Serve requests arriving at ``rate_hz`` for ``duration_s``: (service ms, response ms, issued, served)."""
    period = 1.0 / rate_hz
    issued = max(int(duration_s * rate_hz), 1)
    svc, resp = [], []
    t0 = time.perf_counter()
    last = -1
    while True:
        now = time.perf_counter()
        k = int((now - t0) / period)  # the latest request that has arrived
        if k >= issued:
            break
        if k <= last:  # served it already: sleep until the next one arrives
            time.sleep(max(0.0, t0 + (last + 1) * period - now))
            continue
        arrival = t0 + k * period
        s0 = time.perf_counter()
        call()
        s1 = time.perf_counter()
        svc.append((s1 - s0) * 1e3)
        resp.append((s1 - arrival) * 1e3)
        last = k
    return svc, resp, issued, len(svc)


def main(argv=None) -> int:
    ap = probe_parser()
    ap.add_argument("--calls", type=int, default=200, help="back-to-back calls per variant")
    ap.add_argument("--rate", type=float, default=60.0, help="open-loop request rate (Hz); 0: skip the mode")
    ap.add_argument("--duration", type=float, default=0.5, help="open-loop seconds per variant")
    ap.add_argument("--warmup", type=int, default=20)
    a = ap.parse_args(argv)

    import torch

    models, x, rng = load_probe(a)
    out = {f: {"b2b": [], "svc": [], "resp": [], "issued": 0, "served": 0} for f in a.files}
    keys = list(models)
    with torch.inference_mode():
        for i in rng.permutation(len(keys)):
            f = keys[i]
            m = models[f]
            for _ in range(a.warmup):
                m(x)
            if a.rate > 0:
                # first the sleeping app, after a pause: a thread that has just run flat out starts its
                # sleeps owing the scheduler CPU time and would wait for a core more than a sleeping app does
                time.sleep(PAUSE_S)
                svc, resp, issued, served = serve_open_loop(lambda: m(x), a.rate, a.duration)
                out[f].update(svc=svc, resp=resp, issued=issued, served=served)
            for _ in range(a.calls):
                t0 = time.perf_counter()
                m(x)
                out[f]["b2b"].append((time.perf_counter() - t0) * 1e3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
