"""The ``adascale-rl`` command.

Each subcommand's arguments are declared here; the work is done by the library
function it names, imported only when that subcommand runs (so ``--help`` is
fast and a missing optional piece does not break the others). A user's mistake
ends in one sentence on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

import adascale_rl

EXIT_USER_ERROR = 2


class UserError(Exception):
    """An error in what the user asked for: printed as one sentence, exit code 2."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from adascale_rl.context.traces import TraceError
    from adascale_rl.device.catalog import CatalogError

    return (UserError, TraceError, CatalogError, FileNotFoundError, FileExistsError, KeyError, ValueError)


# --------------------------------------------------------------------------- handlers

def _traces_validate(args) -> int:
    from adascale_rl.context.traces import validate_path

    status = 0
    for p in args.paths:
        try:
            print(validate_path(p))
        except _user_errors()[1] as exc:  # TraceError: report each path, keep going
            print(f"invalid: {exc}", file=sys.stderr)
            status = 1
    return status


def _traces_resample(args) -> int:
    from adascale_rl.context.resample import resample_path

    out, period, n = resample_path(args.path, args.out, args.period)
    print(f"wrote {out}: {n} trace{'' if n == 1 else 's'} of {args.path} on a regular {period:g} s grid "
          f"(linear interpolation, flags held); check it with: adascale-rl traces validate {out}")
    return 0


def _traces_schema(args) -> int:
    from adascale_rl.context.schema import describe

    print(describe())
    return 0


def _record(args) -> int:
    from adascale_rl.context.recorder import record_command

    return record_command(args)


def _synth(args) -> int:
    from adascale_rl.context.synth import synth_command

    return synth_command(args)


def _envs_list(args) -> int:
    from adascale_rl.environment.registration import list_command

    return list_command(args)


def _train(args) -> int:
    from adascale_rl.policies.ppo import train_command

    if args.env is None and args.resume is None:
        raise UserError("give --env ID for a new run, or --resume DIR to continue one")
    return train_command(args)


def _check_jobs(jobs: int | None, one: str) -> None:
    if jobs is not None and jobs < 1:
        raise UserError(f"--jobs {jobs}: give at least 1 (1 plays every {one} in this process)")


def _evaluate(args) -> int:
    from adascale_rl.evaluation.bench import evaluate_command

    _check_jobs(args.jobs, "seed")
    return evaluate_command(args)


def _bench(args) -> int:
    from adascale_rl.evaluation.bench import bench_command

    if args.live:
        from adascale_rl.evaluation.live import bench_live_command

        if args.jobs is not None:
            raise UserError("--jobs goes with the simulated bench; --live runs one controller at a time on this "
                            "machine (a second process would be load)")

        return bench_live_command(args)
    if args.load is not None:
        raise UserError("--load goes with --live (a load schedule for the real model)")
    if args.host_probe is not None:
        raise UserError("--host-probe goes with --live (it times the real model)")
    _check_jobs(args.jobs, "policy")
    return bench_command(args)


def _export(args) -> int:
    from adascale_rl.runtime.export import export_command

    tune = None
    if args.policy is not None:  # a heuristic's margins are tuned as bench tunes them
        from adascale_rl.evaluation.bench import tuned_policy as tune
    return export_command(args, tune=tune)


def _sweep(args) -> int:
    from adascale_rl.evaluation.sweep import sweep_command

    return sweep_command(args)


def _run(args) -> int:
    from adascale_rl.evaluation.live import run_command

    return run_command(args)


def _sim2real(args) -> int:
    from adascale_rl.evaluation.sim2real import sim2real_command

    return sim2real_command(args)


def _profile(args) -> int:
    from adascale_rl.elastic.profile import profile_command

    return profile_command(args)


def _calibrate(args) -> int:
    from adascale_rl.elastic.calibrate import calibrate_command

    return calibrate_command(args)


# --------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="adascale-rl",
        description="Learned runtime adaptation for elastic on-device models: traces, environments, "
                    "controllers, benchmarks and the on-device selector.",
    )
    p.add_argument("--version", action="version", version=f"adascale-rl {adascale_rl.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def cmd(name: str, handler: Callable, help: str, **kw) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help, **kw)
        sp.set_defaults(handler=handler)
        return sp

    # traces
    tr = sub.add_parser("traces", help="inspect and validate trace datasets", description="Trace dataset tools.")
    trs = tr.add_subparsers(dest="traces_command", metavar="ACTION")
    v = trs.add_parser("validate", help="check a dataset folder, a folder of trace CSVs or a single trace CSV "
                                        "(exit 0 if valid)")
    v.add_argument("paths", nargs="+", metavar="PATH")
    v.set_defaults(handler=_traces_validate)
    rs = trs.add_parser("resample", help="put a trace, a folder of trace CSVs or a dataset whose timestamps are "
                                         "jittered onto a regular grid (written to --out)")
    rs.add_argument("path", metavar="PATH")
    rs.add_argument("--out", required=True, metavar="PATH", help="new file or folder to write (must not exist)")
    rs.add_argument("--period", type=float, default=None, metavar="S",
                    help="grid period in seconds (default: the median step, rounded to 2 significant digits)")
    rs.set_defaults(handler=_traces_resample)
    s = trs.add_parser("schema", help="print the context fields with units, ranges and defaults")
    s.set_defaults(handler=_traces_schema)
    tr.set_defaults(handler=lambda a: (tr.print_help(), 2)[1])

    # record
    r = cmd("record", _record, "record the live resource context of this machine as a trace dataset")
    r.add_argument("--duration", type=float, default=None, metavar="S",
                   help="seconds to record (default with --load: the schedule's length)")
    r.add_argument("--interval", type=float, default=1.0, metavar="S", help="sampling period in seconds (default 1)")
    r.add_argument("--out", required=True, metavar="DIR", help="dataset folder to create (or append to)")
    r.add_argument("--split", choices=("train", "test"), default="train", help="split to write into (default train)")
    r.add_argument("--name", default=None, help="file stem of the trace (default: host and start time)")
    r.add_argument("--note", default="", help="how the recording was made (load, processes); goes into schema.json")
    r.add_argument("--load", default=None, metavar="SCHEDULE",
                   help="run a load schedule beside the recording (envs/loads/NAME.yaml or a YAML path): busy "
                        "processes and a memory hog, started and stopped on its timeline")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")

    # synth
    sy = cmd("synth", _synth, "generate a simulated trace dataset from a device preset and a scenario")
    one = sy.add_argument_group("one trace (not with --recipe)")
    one.add_argument("--device", required=False, help="device preset name (envs/devices/NAME.yaml)")
    one.add_argument("--scenario", required=False, help="scenario name (envs/scenarios/NAME.yaml)")
    one.add_argument("--seed", type=int, default=0)
    one.add_argument("--duration", type=float, default=600.0, metavar="S", help="seconds of trace (default 600)")
    one.add_argument("--period", type=float, default=1.0, metavar="S", help="sample period (default 1)")
    one.add_argument("--split", choices=("train", "test"), default="train")
    one.add_argument("--workload", default=None, help="app workload (envs/workloads/NAME.yaml; default DEVICE-vision)")
    # their defaults, read by synth to refuse them next to --recipe
    sy.set_defaults(single_trace_defaults={a.dest: a.default for a in one._group_actions})
    sy.add_argument("--out", required=False, metavar="DIR", help="dataset folder to create (or add a file to)")
    sy.add_argument("--recipe", default=None, metavar="FILE",
                    help="build a whole dataset from a recipe (envs/datasets/NAME.yaml) instead of one trace")
    sy.add_argument("--list", action="store_true", help="list devices, scenarios, workloads and recipes, and exit")
    sy.add_argument("--no-progress", action="store_true", help="no progress bar")

    # envs
    e = sub.add_parser("envs", help="list the registered AdaScale environments")
    es = e.add_subparsers(dest="envs_command", metavar="ACTION")
    el = es.add_parser("list", help="print ids with device, catalog, dataset and reward preset")
    el.set_defaults(handler=_envs_list)
    e.set_defaults(handler=_envs_list)

    # train
    t = cmd("train", _train, "train a PPO controller (MaskablePPO) on an environment's train split")
    t.add_argument("--env", default=None, help="environment id (AdaScale/Rpi4-Vision-v4) or spec name "
                                               "(required unless --resume)")
    t.add_argument("-n", "--timesteps", type=int, default=None, help="training steps (default: from the hyperparameters)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=None, metavar="DIR", help="run folder (default runs/<env-name>/ppo-seed<N>)")
    t.add_argument("--traces", default=None, metavar="PATH",
                   help="a trace dataset of your own (e.g. a recording) to train on instead of the environment's: "
                        "its train split, with a validation split held out of it")
    t.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR where it stopped")
    t.add_argument("--hyperparams", default=None, metavar="FILE", help="YAML keyed by env name (default: agents/hyperparams/ppo.yml)")
    t.add_argument("--eval-freq", type=int, default=None, help="steps between validation evaluations")
    t.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE", help="extra environment arguments")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    # evaluate
    ev = cmd("evaluate", _evaluate, "evaluate one policy on an environment's test split (or --traces); "
                                    "a heuristic's margins are tuned on the train split first, as bench does")
    ev.add_argument("--env", default=None, help="environment id or spec name (default: the default environment)")
    ev.add_argument("--policy", required=True, help="a heuristic or reference name, or a trained run/agent folder")
    ev.add_argument("--seeds", type=int, default=5, help="evaluation seeds (default 5)")
    ev.add_argument("--traces", default=None, metavar="PATH", help="a trace dataset or folder of trace CSVs to evaluate on")
    ev.add_argument("--split", default=None, choices=("train", "val", "test", "all"),
                    help="the split to evaluate on (default test; with --traces of a dataset without a test split, "
                         "all of it, and the output says so)")
    ev.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                    help="environment arguments, as for train (e.g. reward=energy-saver spike_spell_s=8)")
    ev.add_argument("--default-margins", action="store_true",
                    help="run a heuristic with its default margins (default: tuned on the train split, as bench does)")
    ev.add_argument("--jobs", type=int, default=None, metavar="N",
                    help="worker processes, one evaluation seed each, for the oracles and the learned controllers "
                         "(default: the CPUs this process may use; 1: in this process; every other policy plays "
                         "here); the numbers are the same whatever N")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar (on stderr)")

    # bench
    b = cmd("bench", _bench, "benchmark every heuristic, the references and the trained controllers")
    b.add_argument("--env", action="append", default=None, help="environment id (repeatable; default: the default environment)")
    b.add_argument("--seeds", type=int, default=None, help="evaluation seeds (default 5, --quick 2)")
    b.add_argument("--traces", default=None, metavar="PATH", help="a trace dataset or folder of trace CSVs (e.g. your recordings)")
    b.add_argument("--quick", action="store_true", help="fewer seeds and episodes: a smoke run")
    b.add_argument("--out", default="bench-out", metavar="DIR", help="where results.csv, results.md and plots go")
    b.add_argument("--policies", default=None, help="comma-separated subset of policy names, shipped "
                   "controllers (ppo) and trained run folders (context-oracle, a slow diagnostic, runs only when "
                   "named)")
    b.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                   help="environment arguments for every policy, as for train (heuristics are tuned under them too)")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="worker processes that play the policies (default: the CPUs this process may use; 1: all "
                        "in this process); the numbers are the same whatever N")
    b.add_argument("--live", action="store_true",
                   help="run the controllers on the real elastic model on this machine under a load schedule "
                        "instead of the simulator (--env: one environment with a profiled catalog, default "
                        "Local-Digits; docs/LIVE.md)")
    b.add_argument("--load", default=None, metavar="SCHEDULE",
                   help="with --live: the load schedule (default quiet-to-oversubscribed; --quick: live-quick)")
    b.add_argument("--rounds", type=int, default=3, help="with --live: interleaved rounds (default 3)")
    b.add_argument("--host-probe", type=float, default=None, metavar="S",
                   help="with --live: seconds of the host-speed probe before every run, which sim2real replays the "
                        "run at (default 3, --quick 1; 0: none); its wake-up cost at the run's rate takes "
                        "about 2.5 s more at 60 Hz")

    # export
    ex = cmd("export", _export, "export a trained controller (or a heuristic) as a folder the on-device selector "
                                "runs: policy.onnx, policy.npz, selector.json")
    ex.add_argument("--agent", default=None, metavar="DIR", help="a run folder or a shipped agents/<env>/ppo folder")
    ex.add_argument("--policy", default=None, metavar="NAME",
                    help="export a heuristic instead (planner, greedy-kalman, ...), its margins tuned on --env's "
                         "train split as bench tunes them")
    ex.add_argument("--env", default=None, help="environment id or spec name (needed with --policy; with --agent "
                                                "only when the folder has no config.yml)")
    ex.add_argument("--out", required=True, metavar="DIR", help="folder to write (created if missing)")
    ex.add_argument("--env-kwargs", nargs="*", default=[], metavar="KEY=VALUE",
                    help="environment arguments for --policy, as for train")
    ex.add_argument("--quick", action="store_true", help="tune a --policy on fewer train episodes")


    # sweep
    sw = cmd("sweep", _sweep, "a training study on Ray Tune: environments x reward presets x datasets x seeds x "
                              "hyperparameters from a sweep file, each trial a train run evaluated on the validation "
                              "split (needs the extra adascale-rl[distributed])")
    sw.add_argument("config", metavar="CONFIG", help="sweep file (YAML; example: agents/sweeps/example.yml)")
    sw.add_argument("--out", default=None, metavar="DIR",
                    help="study folder: results.csv, results.md, run folders, the Tune experiment (default "
                         "sweeps/<name>); the same --out again resumes the study")
    sw.add_argument("--address", default=None, metavar="ADDR",
                    help="a running Ray cluster (auto, or ray://host:10001); default: Ray in-process on this machine")
    sw.add_argument("--no-progress", action="store_true", help="no line per finished trial")

    # run (live)
    rn = cmd("run", _run, "serve the real elastic model of an environment on this machine, a controller choosing "
                          "its variant every period, optionally under a load schedule (docs/LIVE.md)")
    rn.add_argument("--env", default="Local-Digits",
                    help="environment id, spec name or spec path whose catalog adascale-rl profile built "
                         "(default: Local-Digits)")
    rn.add_argument("--controller", default="planner", metavar="C",
                    help="a heuristic (planner, greedy, static-largest, ...), a trained controller (ppo, "
                         "agents/<env>/<algo>, a run folder) or an exported folder (default: planner)")
    rn.add_argument("--load", default=None, metavar="SCHEDULE",
                    help="a load schedule (name in envs/loads/ or a YAML path): busy processes, memory, app modes")
    rn.add_argument("--duration", type=float, default=None, metavar="S",
                    help="seconds to run (default: the schedule's length, else 60)")
    rn.add_argument("--rate", type=float, default=None, metavar="HZ",
                    help="request rate (default: the schedule's segment, else the workload's default mode)")
    rn.add_argument("--deadline", type=float, default=None, metavar="MS",
                    help="request deadline (default: the schedule's segment, else the workload's default mode)")
    rn.add_argument("--threads", type=int, default=1, help="torch threads for inference (default 1, as profiled)")
    rn.add_argument("--seed", type=int, default=0, help="order of the test inputs")
    rn.add_argument("--quick", action="store_true", help="tune a heuristic controller on fewer train episodes")
    rn.add_argument("--host-probe", type=float, default=3.0, metavar="S",
                    help="seconds of back-to-back inference of every variant before the run, the host's speed "
                         "against the catalog for each, then the wake-up cost of 6 of them at the run's rate (about "
                         "2.5 s more at 60 Hz), which sim2real replays the run with (default 3; 0: none)")
    rn.add_argument("--out", default="live-out", metavar="DIR", help="log folder (default live-out/)")
    rn.add_argument("--no-progress", action="store_true", help="no progress bar")

    # sim2real
    s2 = cmd("sim2real", _sim2real, "hold the simulator against live runs: replay each run's monitored context in "
                                    "the simulator with the same controller, and compare returns, misses, "
                                    "latency and the per-period latency prediction (docs/LIVE.md)")
    s2.add_argument("live_dir", metavar="LIVE_DIR",
                    help="an adascale-rl run --out folder, or a bench --live --out folder (its runs/)")
    s2.add_argument("--seeds", type=int, default=5, help="simulator noise seeds per run (default 5)")
    s2.add_argument("--out", default=None, metavar="DIR", help="where sim2real.csv/.md go (default LIVE_DIR)")
    s2.add_argument("--env", default=None, metavar="SPEC",
                    help="replay in this spec of the runs' environment (the same environment, a catalog of the same "
                         "variants in the same order), e.g. one written by adascale-rl calibrate (default: the spec "
                         "each run names; a run of an earlier version of the dynamics is replayed in the current one, "
                         "and the report says so)")
    s2.add_argument("--host-speed", choices=("run", "run-line", "run-median", "spec"), default="run",
                    help="the simulated host's speed and wake-up cost: each run's own (the probe before it, where "
                         "its summary.json has one; each variant at the ratio and the wake-up cost the probe "
                         "measured for it, default), the same with every variant's wake-up cost on the probe's line "
                         "(run-line), the same with every variant at the probe's median ratio (run-median), or the "
                         "replay spec's service_scale and scheduler constants for every run")
    s2.add_argument("--no-progress", action="store_true", help="no progress bar")

    # calibrate
    ca = cmd("calibrate", _calibrate, "re-measure how this machine shares its cores (the device preset's scheduler "
                                      "constants) on a spread of a profiled catalog's variants, and write a copy of "
                                      "the spec and the preset with them (docs/LIVE.md)")
    ca.add_argument("--env", required=True, help="an environment whose catalog adascale-rl profile measured here "
                                                 "(id, name or spec path)")
    ca.add_argument("--out", required=True, metavar="DIR", help="folder for the spec and devices/<preset>.yaml")
    ca.add_argument("--variants", type=int, default=6, help="variants timed, spread over the latency range (default 6)")
    ca.add_argument("--rounds", type=int, default=2, help="interleaved rounds over the load levels (default 2)")
    ca.add_argument("--threads", type=int, default=1,
                    help="torch threads, as the live loop runs (default 1); corun_stretch is refitted only where "
                         "they are the catalog's")
    ca.add_argument("--seed", type=int, default=0)
    ca.add_argument("--fresh", action="store_true", help="fit on this run alone, not also on the earlier runs "
                                                         "saved in --out (their samples are kept)")
    ca.add_argument("--quick", action="store_true", help="two load levels and short probes (a smoke run)")
    ca.add_argument("--refit", action="store_true", help="time nothing: refit on the samples saved in --out (the "
                                                         "newest run's host speed, machine and threads; pooled "
                                                         "unless --fresh; --variants, --rounds, --threads and "
                                                         "--quick do not apply)")
    ca.add_argument("--no-progress", action="store_true", help="no progress bar")

    # profile
    pr = cmd("profile", _profile, "train the elastic model, derive its variants, profile them on this machine "
                                  "and write a catalog, a device preset and an environment spec (use it with --env)")
    pr.add_argument("--quick", action="store_true", help="tiny configuration for a smoke run")
    pr.add_argument("--out", default=None, metavar="DIR",
                    help="folder to write catalogs/, devices/ and the environment spec into (default ./adascale-profile; "
                         "never the shipped envs/)")
    pr.add_argument("--data", default="digits", help="digits (bundled), cifar10:PATH or folder:PATH")
    pr.add_argument("--threads", type=int, default=None,
                    help="torch threads while timing (default: every CPU this process may run on)")
    pr.add_argument("--seed", type=int, default=0)
    pr.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USER_ERROR
    from adascale_rl._signals import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():  # a command stopped by SIGTERM stops its children as on Ctrl-C
            return int(args.handler(args) or 0)
    except KeyboardInterrupt as exc:
        if not getattr(exc, "reported", False):  # a command that said what it saved has said enough
            print("interrupted", file=sys.stderr)
        return 130
    except _user_errors() as exc:
        if isinstance(exc, KeyError) and not (exc.args and isinstance(exc.args[0], str) and " " in exc.args[0]):
            raise  # a bare key is a bug, not a sentence for the user: the traceback says where it is
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"adascale-rl {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
