"""Command line: ``jaxdqn train | sweep | eval | doctor | probe | plot | render | export |
list`` (also ``python -m jaxdqn``).

This module parses the arguments without importing JAX, so ``--help`` and argument errors
answer at once. Before a command that compiles, it gives JAX one CPU device per core and a
persistent compilation cache (:mod:`jaxdqn.host.startup`; the user's own settings win);
then :mod:`jaxdqn.host.commands` runs the command.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import math
import sys

from jaxdqn import __version__
from jaxdqn.host.plotting import SMOOTH_WINDOW, X_AXES
from jaxdqn.host.startup import CACHE_ENV, LOCAL_HOSTS, prepare_jax, share_cores

# Commands that compile programs, and so use every core and the compilation cache.
_COMPILING = ("train", "sweep", "probe", "eval", "render")
# Commands whose work several processes can share (jax.distributed).
_MULTI_PROCESS = ("train", "sweep")

_DEFAULTS = {"env": "CartPole-v1", "seeds": 8, "seed": 0}
# jaxdqn.presets.PRESET_VARIANTS, named here without importing JAX.
PRESET_VARIANTS = ("dqn", "rainbow")


def _whole(text: str) -> int:
    """A whole number as people type it: ``20000``, ``20_000`` or ``2e4``."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = math.nan
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: must be a whole number")
    return int(value)


def _positive(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is invalid: must be >= 1")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} is invalid: must be in [0, 1]")
    return value


def _non_negative(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is invalid: must be >= 0")
    return value


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows each option's default, where it has one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool | list):
            return action.help
        return super()._get_help_string(action)


def make_parser() -> argparse.ArgumentParser:
    """The ``jaxdqn`` parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="jaxdqn",
        description="Deep Q-Learning in JAX: train, sweep, diagnose, probe, evaluate, plot, "
        "render, export.",
        formatter_class=_DefaultsHelp,
    )
    jax_version = importlib.metadata.version("jax")
    parser.add_argument(
        "--version", action="version", version=f"jaxdqn {__version__} (jax {jax_version})"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_command(commands)
    _add_sweep_command(commands)
    _add_doctor_probe_commands(commands)
    _add_eval_command(commands)
    _add_plot_command(commands)
    _add_render_command(commands)
    _add_export_command(commands)
    listing = commands.add_parser(
        "list", formatter_class=_DefaultsHelp, help="list presets, env ids or config fields"
    )
    listing.add_argument("what", choices=("presets", "envs", "fields"))
    listing.set_defaults(command="list")
    return parser


def _add_train_command(commands) -> None:
    train = commands.add_parser(
        "train",
        formatter_class=_DefaultsHelp,
        allow_abbrev=False,  # --resume checks flags by their full names
        help="train a preset (or any gymnax env) over seeds",
    )
    d = _DEFAULTS
    train.add_argument(
        "--env",
        default=d["env"],
        help="env id (jaxdqn list envs), suite/Id, or import path package.module:Name",
    )
    _add_preset_option(train)
    train.add_argument(
        "--config",
        metavar="CONFIG_JSON",
        default=None,
        help="start from this config.json (a run folder's, say) instead of the env's preset; "
        "--set and --total-timesteps apply on top",
    )
    train.add_argument(
        "--env-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="replace a field of the env's default params, e.g. max_steps_in_episode=200",
    )
    train.add_argument("--seeds", type=_positive, default=d["seeds"], help="seeds trained at once")
    train.add_argument("--seed", type=int, default=d["seed"], help="first seed")
    train.add_argument(
        "--total-timesteps",
        type=_positive,
        default=None,
        help="env steps per seed (default: the preset's); the preset's schedules scale with "
        "it. With --resume: extend the run to this many env steps",
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a DQNConfig field (repeatable; jaxdqn list fields): learning_rate=3e-4, "
        "double_q=false, max_grad_norm=none, hidden_sizes=64,64, buffer_size=1e5",
    )
    train.add_argument("--eval-episodes", type=_positive, default=100, help="greedy episodes/seed")
    _add_run_folder_options(train)
    _add_process_options(train)
    _add_jax_options(train)
    train.set_defaults(command="train")


def _add_run_folder_options(command: argparse.ArgumentParser) -> None:
    """Where a run is written, how it checkpoints and resumes, and where else it logs."""
    group = command.add_argument_group("run folder, checkpoints and logging")
    group.add_argument("--out", default="runs", help="parent folder of the run folder")
    group.add_argument(
        "--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint"
    )
    group.add_argument(
        "--checkpoint-every",
        type=_non_negative,
        default=10,
        metavar="LOG_POINTS",
        help="checkpoint every this many log points (0: only at the end)",
    )
    group.add_argument("--keep-checkpoints", type=_positive, default=2, help="newest kept")
    group.add_argument(
        "--no-progress", dest="progress", action="store_false", help="no live progress line"
    )
    group.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files to RUN_DIR/tensorboard (needs tensorboardX)",
    )
    group.add_argument(
        "--wandb", metavar="PROJECT", default=None, help="also log to this W&B project"
    )
    group.add_argument(
        "--wandb-mode",
        choices=("online", "offline"),
        default=None,
        help="W&B mode (default: W&B's own, from WANDB_MODE, else online)",
    )
    group.add_argument(
        "--keep-going",
        action="store_true",
        help="train on when a seed's loss, gradients or parameters go NaN or infinite "
        "(by default the run stops there, keeping the checkpoints written before)",
    )


def _add_preset_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--preset",
        choices=PRESET_VARIANTS,
        default="dqn",
        help="which of the env's presets: DQN, or Rainbow (C51, noisy nets, prioritized "
        "n-step replay, dueling, Double; jaxdqn list presets)",
    )


def _add_process_options(command: argparse.ArgumentParser) -> None:
    """The options that share a command's runs over several processes (jax.distributed)."""
    group = command.add_argument_group(
        "several processes (the runs' seeds over processes and machines; the output folder "
        "on a filesystem they all see)"
    )
    group.add_argument(
        "--num-processes", type=_positive, default=1, help="processes training the run"
    )
    group.add_argument(
        "--process-id", type=_non_negative, default=None, help="this process, 0..N-1"
    )
    group.add_argument(
        "--coordinator", metavar="HOST:PORT", default=None, help="where process 0 listens"
    )
    group.add_argument(
        "--cluster",
        action="store_true",
        help="take the processes from the SLURM job step or Open MPI's mpirun "
        "(jax.distributed's detection) instead of the three options above",
    )


def _check_process_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses process options that do not fit together, before JAX is imported."""
    explicit = [flag for flag in _PROCESS_FLAGS if flag in args.given_flags]
    if args.cluster and explicit:
        parser.error(f"--cluster reads the processes from the cluster; drop {', '.join(explicit)}.")
    if args.num_processes == 1 and not args.cluster:
        if args.process_id not in (None, 0) or args.coordinator is not None:
            parser.error("--process-id and --coordinator need --num-processes N (N > 1).")
        return
    if not args.cluster:
        if args.process_id is None or args.coordinator is None:
            parser.error(
                f"--num-processes {args.num_processes} needs --process-id (0..."
                f"{args.num_processes - 1}) and --coordinator HOST:PORT."
            )
        if args.process_id >= args.num_processes:
            parser.error(
                f"--process-id {args.process_id} is invalid: must be in 0..."
                f"{args.num_processes - 1} (--num-processes {args.num_processes})."
            )
        host, _, port = args.coordinator.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            parser.error(
                f"--coordinator {args.coordinator} is invalid: give HOST:PORT, e.g. "
                "node001:12345, reachable from every process."
            )
    if getattr(args, "keep_checkpoints", 2) < 2:
        parser.error(
            f"--keep-checkpoints {args.keep_checkpoints} is invalid with several processes: "
            "keep at least 2, so that a step every process holds survives any one's death."
        )
    if getattr(args, "wandb", None) is not None:
        parser.error("--wandb logs one process's run; train with one process to use it.")


def _share_this_machine(args: argparse.Namespace) -> None:
    """Processes whose coordinator is on this machine split its cores (before JAX starts),
    and say so."""
    host = (args.coordinator or "").rpartition(":")[0].strip("[]")
    if args.num_processes < 2 or host not in LOCAL_HOSTS:
        return
    cores = share_cores(args.num_processes, args.process_id)
    if cores is not None:
        print(
            f"jaxdqn: process {args.process_id} of {args.num_processes} on this machine: "
            f"cores {cores[0]}-{cores[-1]}",
            file=sys.stderr,
        )


def _join_processes(args: argparse.Namespace):
    """This process's :class:`jaxdqn.host.processes.ProcessGroup`, ``jax.distributed``
    joined when there are several (before anything imports gymnax, whose import starts
    JAX's backends)."""
    from jaxdqn.host.processes import ONE_PROCESS, join_processes

    if args.cluster:
        return join_processes(None, None, None)
    if args.num_processes == 1:
        return ONE_PROCESS
    return join_processes(args.num_processes, args.process_id, args.coordinator)


_PROCESS_FLAGS = ("--num-processes", "--process-id", "--coordinator")


def _add_sweep_command(commands) -> None:
    sweep = commands.add_parser(
        "sweep",
        formatter_class=_DefaultsHelp,
        allow_abbrev=False,  # the process options are checked by their full names
        help="train a grid (or random samples) of settings over seeds: a table, a run "
        "folder per setting, sweep.json and a plot",
    )
    sweep.add_argument("--env", default=_DEFAULTS["env"], help="env id, as for train")
    _add_preset_option(sweep)
    sweep.add_argument("--config", metavar="CONFIG_JSON", default=None, help="start from this")
    sweep.add_argument(
        "--env-param", action="append", default=[], metavar="NAME=VALUE", help="as for train"
    )
    sweep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=V1,V2,...",
        help="values of a field to sweep (repeatable; the grid is every combination); "
        "FIELD=log:LOW:HIGH, lin:LOW:HIGH or int:LOW:HIGH is a range for --samples; one value "
        "fixes the field; tuples in brackets: hidden_sizes=[64,64],[128]",
    )
    sweep.add_argument("--seeds", type=_positive, default=4, help="seeds per setting")
    sweep.add_argument("--seed", type=int, default=0, help="first seed")
    sweep.add_argument(
        "--samples",
        type=_positive,
        default=None,
        help="random search: this many settings, each field drawn from its values or range "
        "(default: the whole grid)",
    )
    sweep.add_argument("--sample-seed", type=int, default=0, help="seed of the random draws")
    sweep.add_argument(
        "--total-timesteps", type=_positive, default=None, help="env steps per seed, as for train"
    )
    sweep.add_argument("--eval-episodes", type=_positive, default=100, help="greedy episodes/seed")
    sweep.add_argument("--out", default="sweeps", help="parent folder of the sweep folder")
    _add_process_options(sweep)
    _add_jax_options(sweep)
    sweep.set_defaults(command="sweep")


def _add_doctor_probe_commands(commands) -> None:
    doctor_cmd = commands.add_parser(
        "doctor",
        formatter_class=_DefaultsHelp,
        help="why a run does not train: findings with evidence, causes and fixes",
    )
    doctor_cmd.add_argument("run_dir")
    doctor_cmd.set_defaults(command="doctor")

    probe = commands.add_parser(
        "probe",
        formatter_class=_DefaultsHelp,
        help="check a configuration's learner on probe envs with known Q-values",
    )
    probe.add_argument("--env", default=_DEFAULTS["env"], help="whose preset to probe")
    _add_preset_option(probe)
    probe.add_argument("--config", metavar="CONFIG_JSON", default=None, help="probe this config")
    probe.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="override a field"
    )
    probe.add_argument("--seeds", type=_positive, default=4, help="seeds per probe")
    probe.add_argument(
        "--total-timesteps",
        type=_positive,
        default=None,
        help="env steps per probe (default: the probes' own budget)",
    )
    _add_jax_options(probe)
    probe.set_defaults(command="probe")


def _add_eval_command(commands) -> None:
    evaluate_cmd = commands.add_parser(
        "eval", formatter_class=_DefaultsHelp, help="evaluate a finished run greedily, per seed"
    )
    evaluate_cmd.add_argument("run_dir")
    evaluate_cmd.add_argument("--episodes", type=_positive, default=100, help="episodes per seed")
    evaluate_cmd.add_argument(
        "--epsilon",
        type=_probability,
        default=None,
        help="ε of the ε-greedy policy (default: the run's eval_epsilon, 0 = greedy)",
    )
    evaluate_cmd.add_argument(
        "--eval-seed",
        type=int,
        default=None,
        help="folded into each seed's key (default: the one training's evaluation used)",
    )
    evaluate_cmd.add_argument(
        "--checkpoint",
        metavar="latest|STEPS",
        default=None,
        help="evaluate a checkpoint's params (a run still training or interrupted) instead "
        "of the final ones",
    )
    _add_jax_options(evaluate_cmd)
    evaluate_cmd.set_defaults(command="eval")


def _add_plot_command(commands) -> None:
    plot = commands.add_parser(
        "plot",
        formatter_class=_DefaultsHelp,
        help="learning curves of runs (smoothed mean over seeds, 95%% interval)",
    )
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("--out", default="learning_curves.png", help="PNG file to write")
    plot.add_argument("--metric", default="episode_return", help="metric on the y axis")
    plot.add_argument(
        "--label", action="append", default=None, help="legend label of each run, in order"
    )
    plot.add_argument(
        "--smooth",
        type=_positive,
        default=SMOOTH_WINDOW,
        help="log windows per smoothing window (1: none)",
    )
    plot.add_argument("--x", default="env_steps", choices=tuple(X_AXES), help="x axis")
    plot.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    plot.set_defaults(command="plot")


def _add_render_command(commands) -> None:
    render = commands.add_parser(
        "render", formatter_class=_DefaultsHelp, help="draw one seed's episode as a GIF"
    )
    render.add_argument("run_dir")
    render.add_argument("--seed", type=int, default=0, help="which trained seed")
    render.add_argument("--out", default=None, help="default: RUN_DIR/episode_seed<SEED>.gif")
    render.add_argument(
        "--max-steps", type=_positive, default=None, help="steps drawn (default: time limit)"
    )
    render.add_argument(
        "--epsilon", type=_probability, default=None, help="ε (default: the run's eval_epsilon)"
    )
    render.add_argument("--episode-seed", type=int, default=0, help="folded into the seed's key")
    render.add_argument("--fps", type=_positive, default=30, help="frames per second")
    render.add_argument("--width", type=_positive, default=360, help="frame width in pixels")
    render.add_argument(
        "--checkpoint", metavar="latest|STEPS", default=None, help="a checkpoint's params"
    )
    render.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    _add_jax_options(render)
    render.set_defaults(command="render")


def _add_export_command(commands) -> None:
    export = commands.add_parser(
        "export", formatter_class=_DefaultsHelp, help="write one seed's policy as a NumPy .npz"
    )
    export.add_argument("run_dir")
    export.add_argument("--seed", type=int, default=0, help="which trained seed")
    export.add_argument("--out", default=None, help="default: RUN_DIR/policy_seed<SEED>.npz")
    export.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    export.set_defaults(command="export")


def main(argv: list[str] | None = None) -> int:
    """Runs the command line with ``argv`` (default ``sys.argv[1:]``); the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = make_parser()
    args = parser.parse_args(argv)
    args.given_flags = {token.split("=", 1)[0] for token in argv if token.startswith("--")}
    args.jax_setup = None
    if args.command in _MULTI_PROCESS:
        _check_process_options(parser, args)
        _share_this_machine(args)
    if args.command in _COMPILING:
        args.jax_setup = prepare_jax(every_core=True, compilation_cache=args.compilation_cache)
    if args.command in _MULTI_PROCESS:
        try:
            args.process_group = _join_processes(args)
        except (ValueError, RuntimeError) as error:  # no cluster found, a coordinator timeout
            print(f"jaxdqn: error: joining the other processes failed: {error}", file=sys.stderr)
            return 2
    from jaxdqn.host import commands  # imports JAX, after its settings are made

    return commands.COMMANDS[args.command](args)


def _add_jax_options(command: argparse.ArgumentParser) -> None:
    """The switch of a command that compiles: the compilation cache."""
    command.add_argument(
        "--no-compilation-cache",
        dest="compilation_cache",
        action="store_false",
        help=f"compile every program afresh (the cache is in ~/.cache/jaxdqn/xla, or in "
        f"${CACHE_ENV}; set it to 'off' to turn the cache off everywhere)",
    )


if __name__ == "__main__":
    sys.exit(main())
