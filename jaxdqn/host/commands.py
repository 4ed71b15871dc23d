"""What each ``jaxdqn`` command does, once :mod:`jaxdqn.host.cli` has parsed its arguments
and prepared JAX: it prints; the run driver (``jaxdqn.host.driver``) does the work.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import typing
from pathlib import Path
from typing import Any

import jax

from jaxdqn.config import DQNConfig
from jaxdqn.core.loop import run_updates
from jaxdqn.host import doctor, driver
from jaxdqn.host.checkpoint import checkpoint_steps
from jaxdqn.host.devices import cores_hint
from jaxdqn.host.monitor import Progress
from jaxdqn.host.probe import (
    PROBE_MIN_EPSILON,
    PROBE_STEPS,
    format_results,
    probe_epsilon,
    run_probes,
)
from jaxdqn.host.processes import ProcessGroup, ProcessLost, agree
from jaxdqn.host.startup import JaxSetup, usable_cores
from jaxdqn.host.sweep import is_swept, make_settings, program_groups, run_sweep, split_values
from jaxdqn.hyperparams import TRACED_FIELDS


def train_command(args: argparse.Namespace) -> int:
    """``jaxdqn train``: a new run (or ``--resume``) to its end; returns the exit code.
    Ctrl-C at any moment ends it with one line: a new run interrupted before its first
    checkpoint leaves no folder behind, any other leaves one that ``--resume`` continues.
    A process of several that must stop ends at once (:func:`_leave`)."""
    group = args.process_group
    try:
        _check_writer_packages(args)
        agree(group, "commands", _command_text(args))
        run = _start_or_resume(args, group)
    except ProcessLost as lost:
        return _leave(group, f"\njaxdqn: stopped: {lost}.", 1)
    except (ValueError, OSError) as error:
        # A bad setting or run folder, an --out that is a file or cannot be written: say
        # what is wrong, no traceback.
        return _leave(group, f"jaxdqn: error: {error}", 2)
    except KeyboardInterrupt:
        return _leave(
            group, "\njaxdqn: interrupted before training started; nothing was written.", 130
        )
    try:
        writers = _open_writers(args, run)
    except (ValueError, OSError, RuntimeError) as error:  # e.g. W&B online without a login
        if args.resume is None and group.count == 1:
            shutil.rmtree(run.run_dir, ignore_errors=True)
        return _leave(group, f"jaxdqn: error: opening a metrics writer failed: {error}", 2)
    try:
        _print_start(run, args.jax_setup)
        code = _train(args, run, writers)
    except ProcessLost as lost:
        code, message = (
            1,
            f"\njaxdqn: stopped: {lost}. Resume every process with: {_resume_hint(run)}",
        )
    except KeyboardInterrupt:
        code, message = 130, _interrupted(run, new_run=args.resume is None)
    else:
        message = None
    for writer in writers:
        writer.close()
    return code if message is None and code == 0 else _leave(group, message, code)


def _leave(group: ProcessGroup, message: str | None, code: int) -> int:
    """Prints ``message`` (stderr) and returns ``code``; a process of several ends here at
    once: JAX's shutdown would first wait for the others, which stop only when they find
    this one gone."""
    if message:
        print(message, file=sys.stderr, flush=True)
    if group.count > 1:
        sys.stdout.flush()
        os._exit(code)
    return code


def _command_text(args: argparse.Namespace) -> str:
    """What every process of a run must be given alike: the command's options but for
    --process-id."""
    own = ("process_id", "jax_setup", "process_group", "given_flags")
    return json.dumps({k: v for k, v in sorted(vars(args).items()) if k not in own}, default=str)


def _resume_hint(run: driver.Run) -> str:
    """The command that resumes a run (with its process options, when it has several)."""
    hint = f"jaxdqn train --resume {run.run_dir}"
    if run.group.count > 1:
        hint += (
            f" --num-processes {run.group.count} --process-id I --coordinator HOST:PORT "
            "(or --cluster)"
        )
    return hint


def _train(args: argparse.Namespace, run: driver.Run, writers: list) -> int:
    """Fits the run with a progress line and the writers; prints the summary and the
    doctor's verdict (exit code 0, or 3 when the guard stops the run)."""
    progress = Progress(run.config.total_timesteps, len(run.seeds), run.start_steps, sys.stderr)
    listeners = [progress.update] if args.progress else []
    listeners += [writer.write for writer in writers]
    try:
        summary = driver.fit(
            run,
            eval_episodes=args.eval_episodes,
            checkpoint_every=args.checkpoint_every,
            keep_checkpoints=args.keep_checkpoints,
            on_rows=lambda rows: [listen(rows) for listen in listeners],
            on_start=progress.start,
            stop_on_non_finite=not args.keep_going,
        )
    except driver.NonFiniteRun as stopped:
        return _stopped(run, stopped)
    print(format_summary(summary))
    if not run.group.writes_shared_files:
        print(f"{_process_line(run)} done; process 0 wrote the run's summary in {run.run_dir}")
        return 0
    findings = doctor.diagnose_run(run.run_dir)
    for writer in writers:
        writer.write_findings(findings, run.config.total_timesteps)
    print("doctor: " + "\n        ".join(f.line() for f in findings))
    print(f"run folder: {run.run_dir}  (details: jaxdqn doctor {run.run_dir})")
    return 0


def _check_writer_packages(args: argparse.Namespace) -> None:
    """Refuses ``--tensorboard`` / ``--wandb`` without their package, before any work."""
    from jaxdqn.host.writers import TensorBoardWriter, WandbWriter

    if args.tensorboard:
        TensorBoardWriter.require()
    if args.wandb is not None:
        WandbWriter.require()


def _open_writers(args: argparse.Namespace, run: driver.Run) -> list:
    """The TensorBoard and W&B writers the flags ask for."""
    from jaxdqn.host.writers import TensorBoardWriter, WandbWriter

    writers = []
    if args.tensorboard:
        writers.append(TensorBoardWriter(run.run_dir / "tensorboard", run.seeds))
    if args.wandb is not None:
        writers.append(WandbWriter(run.run_dir, run.seeds, run.config, args.wandb, args.wandb_mode))
    return writers


def _stopped(run: driver.Run, stopped: driver.NonFiniteRun) -> int:
    """Reports a run the guard stopped (exit code 3), with the doctor's findings."""
    findings = doctor.diagnose_run(run.run_dir)
    print(f"\njaxdqn: stopped: {stopped}", file=sys.stderr)
    for finding in findings:
        print(f"  {finding.line()}", file=sys.stderr)
    print(
        f"Details: jaxdqn doctor {run.run_dir}. To train the healthy seeds on regardless: "
        "--keep-going.",
        file=sys.stderr,
    )
    return 3


def sweep_command(args: argparse.Namespace) -> int:
    """``jaxdqn sweep``: every setting trained over the seeds, then the table (exit code 2
    for bad input, found before anything compiles)."""
    group = args.process_group
    try:
        agree(group, "commands", _command_text(args))
        settings, axes = _sweep_settings(args)
        seeds = list(range(args.seed, args.seed + args.seeds))
        _print_setup(args.jax_setup)
        print(_sweep_plan(settings, axes, len(seeds)), flush=True)
        record = run_sweep(settings, seeds, args.out, args.eval_episodes, axes, group)
    except (ValueError, OSError) as error:
        return _leave(group, f"jaxdqn: error: {error}", 2)
    except KeyboardInterrupt:
        return _leave(group, "\njaxdqn: sweep interrupted.", 130)
    if record is None:
        print(f"process {group.index} of {group.count} done; process 0 wrote the sweep")
        return 0
    print(format_sweep(record))
    return 0


def _sweep_settings(args: argparse.Namespace) -> tuple[list, list[str]]:
    """The settings ``jaxdqn sweep`` asks for, and its swept ``--set`` texts.

    Raises:
      ValueError: naming what is wrong, before anything compiles.
    """
    if args.config is not None and {"--env", "--preset"} & args.given_flags:
        raise ValueError("--config and --env/--preset both choose the config; give one.")
    fixed, axes = [], []
    for text in args.set:
        (axes if is_swept(text) else fixed).append(text)
    if not axes:
        raise ValueError(
            "jaxdqn sweep needs a field to sweep: --set FIELD=V1,V2,... (e.g. "
            "--set learning_rate=1e-4,3e-4,1e-3) or a range with --samples K."
        )
    both = {split_values(t)[0] for t in fixed} & {split_values(t)[0] for t in axes}
    if both:
        raise ValueError(f"--set {', '.join(sorted(both))} is both fixed and swept; give one.")
    base = driver.build_config(
        args.env, args.total_timesteps, fixed, args.env_param, args.config, args.preset
    )
    settings = make_settings(base, axes, args.samples, args.sample_seed)
    if len(settings) * args.seeds > MAX_SEEDS:
        raise ValueError(
            f"{len(settings)} settings x {args.seeds} seeds is too many: a sweep trains at "
            f"most {MAX_SEEDS:,} runs; sweep fewer values or seeds."
        )
    return settings, axes


def _sweep_plan(settings: list, axes: list[str], num_seeds: int) -> str:
    """The line that says up front how many programs the sweep compiles, and why."""
    programs = len(program_groups(settings))
    fields = [split_values(text)[0] for text in axes]
    static = [f for f in fields if f not in TRACED_FIELDS]
    why = (
        f"{', '.join(static)} change{'s' if len(static) == 1 else ''} the program: one per "
        f"{'value' if len(static) == 1 else 'combination of values'}"
        if static
        else "every swept field is traced"
    )
    return (
        f"jaxdqn: sweep of {len(settings)} settings x {num_seeds} seeds = "
        f"{len(settings) * num_seeds} runs in {programs} program{'s' * (programs > 1)} ({why})"
    )


def format_sweep(record: dict[str, Any]) -> str:
    """The sweep's table: per setting the greedy return's mean and 95% interval over seeds,
    the env steps to solve and the doctor's verdict; ``*`` marks the best."""
    rows = record["settings"]
    width = max(len("setting"), *(len(row["name"]) for row in rows))
    lines = [f"  {'setting':<{width}}  greedy return [95% interval]  steps to solve  doctor"]
    for row in rows:
        low, high = row["interval"]
        solve = row["steps_to_solve"]
        lines.append(
            f"{'*' if row['name'] == record['best'] else ' '} {row['name']:<{width}}  "
            f"{row['greedy_return_mean']:9.1f} [{low:7.1f}, {high:7.1f}]  "
            f"{'-' if solve is None else f'{solve:,}':>14}  {', '.join(row['doctor'])}"
        )
    lines.append(
        f"greedy return over {record['eval_episodes']} episodes, mean over seeds "
        f"{record['seeds'][0]}-{record['seeds'][-1]}; * best. Written: {record['folder']} "
        "(sweep.json, sweep.png, a run folder per setting)"
    )
    return "\n".join(lines)


def probe_command(args: argparse.Namespace) -> int:
    """``jaxdqn probe``: a configuration's learner on the probe envs; exit code 1 if any
    probe fails."""
    try:
        if args.config is not None and {"--env", "--preset"} & args.given_flags:
            raise ValueError("--config and --env/--preset both choose the config; give one.")
        config = driver.build_config(args.env, None, args.set, [], args.config, args.preset)
        steps = PROBE_STEPS if args.total_timesteps is None else args.total_timesteps
        print(
            f"probing the learner of {args.config or args.env}: {args.seeds} seeds x "
            f"{steps:,} env steps per probe"
        )
        if probe_epsilon(config) != (config.exploration_start, config.exploration_end):
            print(
                f"ε-greedy's ε stays at {PROBE_MIN_EPSILON} or above on the probes (this "
                f"learner's goes from {config.exploration_start} to {config.exploration_end}): "
                "probes check the learner, and an action hardly ever tried would fail one "
                "as if the loss were wrong"
            )
        results = run_probes(config, seeds=args.seeds, total_timesteps=steps)
    except (ValueError, OSError) as error:
        print(f"jaxdqn: error: {error}", file=sys.stderr)
        return 2
    print(format_results(results))
    failed = [r for r in results if not r.passed]
    print(f"{len(results) - len(failed)} of {len(results)} probes pass.")
    return 1 if failed else 0


def doctor_command(args: argparse.Namespace) -> int:
    """``jaxdqn doctor RUN_DIR``: the findings, with causes and fixes; writes
    ``diagnosis.json``. Exit code 1 if any finding is an error, 0 otherwise."""
    try:
        findings = doctor.diagnose_run(args.run_dir)
    except (ValueError, OSError) as error:
        print(f"jaxdqn: error: {error}", file=sys.stderr)
        return 2
    for finding in findings:
        print(finding.line())
        if finding.cause:
            print(f"        cause: {finding.cause}")
        if finding.fix:
            print(f"        try:   {finding.fix}")
    print(f"written: {Path(args.run_dir) / 'diagnosis.json'}")
    return 1 if any(f.severity == "error" for f in findings) else 0


def _process_line(run: driver.Run) -> str:
    """``process I of N (seeds A-B)``, naming this process's share."""
    return f"process {run.group.index} of {run.group.count} (seeds {run.seeds[0]}-{run.seeds[-1]})"


def _start_or_resume(args: argparse.Namespace, group: ProcessGroup) -> driver.Run:
    """The run ``args`` ask for: a new one (its config and seeds checked) or a resumed one
    (refusing any flag that would choose another config or seeds, default or not), with
    this process's share of its seeds."""
    if args.resume is not None:
        given = [flag for flag in _RUN_FLAGS if flag in args.given_flags]
        if given:
            raise ValueError(
                f"--resume continues a run with its own config and seeds; drop {', '.join(given)} "
                "(--total-timesteps N extends it)."
            )
        run = driver.resume_run(args.resume, args.total_timesteps, group)
        _print_extension(run, args.total_timesteps)
        return run
    if args.seeds > MAX_SEEDS:
        raise ValueError(
            f"--seeds {args.seeds:,} is invalid: one run trains at most {MAX_SEEDS:,} seeds; "
            "split them over runs with --seed."
        )
    if args.seed < 0 or args.seed + args.seeds > 2**32:
        raise ValueError(
            f"--seed {args.seed} --seeds {args.seeds:,} is invalid: seeds are keys "
            "jax.random.key(s) with 0 <= s < 2**32 (a larger s would repeat a smaller one)."
        )
    if args.config is not None and {"--env", "--preset"} & args.given_flags:
        raise ValueError("--config and --env/--preset both choose the config; give one.")
    config = driver.build_config(
        args.env, args.total_timesteps, args.set, args.env_param, args.config, args.preset
    )
    _print_scaling(args, config)
    seeds = list(range(args.seed, args.seed + args.seeds))
    return driver.start_run(config, seeds, args.out, group)


def _interrupted(run: driver.Run, new_run: bool) -> str:
    """The line that ends an interrupted run; a new run of one process with no checkpoint
    yet is removed, so no folder is left that --resume, eval and plot would all turn
    away."""
    done = checkpoint_steps(run.checkpoints)
    if done and done[-1] >= run.config.total_timesteps:
        return (
            f"\njaxdqn: interrupted during the final evaluation; training is complete. "
            f"Evaluate and write the summary with: {_resume_hint(run)}"
        )
    if done:
        return (
            f"\njaxdqn: interrupted; metrics so far are in {run.run_dir}. Resume from "
            f"{done[-1]:,} env steps with: {_resume_hint(run)}"
        )
    if new_run and run.group.count == 1:  # other processes may have written checkpoints
        shutil.rmtree(run.run_dir, ignore_errors=True)
        return f"\njaxdqn: interrupted before the first checkpoint; removed {run.run_dir}."
    return f"\njaxdqn: interrupted; {run.run_dir} is as it was."


def _print_scaling(args: argparse.Namespace, config) -> None:
    """One line naming the schedules scaled to a budget other than the base's."""
    config_file = args.config
    preset_total, changed = driver.scaled_schedules(
        args.env, args.set, config, config_file, args.preset
    )
    if changed:
        listed = ", ".join(
            f"{name} {_number(a)} -> {_number(b)}" for name, (a, b) in changed.items()
        )
        print(
            f"jaxdqn: schedules scaled from the {preset_total:,}-step "
            f"{'config' if config_file else 'preset'} to "
            f"{config.total_timesteps:,} env steps: {listed} (--set a field to keep a value)",
            flush=True,
        )


def _print_extension(run: driver.Run, total_timesteps: int | None) -> None:
    """What extending a run to ``total_timesteps`` keeps and what follows the new budget."""
    extended = json.loads((run.run_dir / "run.json").read_text()).get("extended", [])
    if total_timesteps is None or not extended or extended[-1]["to"] != total_timesteps:
        return
    config, old = run.config, extended[-1]["from"]
    spans = [
        name
        for name, on in (
            ("the linear learning-rate decay", config.learning_rate_schedule == "linear"),
            ("prioritized replay's β annealing", config.prioritized),
        )
        if on
    ]
    print(
        f"jaxdqn: extending {run.run_dir} from {old:,} to {total_timesteps:,} env steps per "
        "seed; schedules in env steps and updates keep their values"
        + (f", {' and '.join(spans)} now span the new budget" if spans else "")
        + (
            f" (the {old:,}-step results are kept as summary_{old}.json, params_{old}.npz)"
            if (run.run_dir / f"summary_{old}.json").exists()
            else ""
        ),
        flush=True,
    )


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _print_start(run: driver.Run, setup: JaxSetup | None) -> None:
    """What JAX was given and the cores tip (stderr), the line that opens a run (stdout)."""
    platform_name = jax.local_devices()[0].platform
    _print_setup(setup)
    hint = cores_hint(platform_name, jax.local_device_count(), len(run.seeds), usable_cores())
    if hint and (setup is None or setup.cpu_devices_source != "user"):  # not the user's choice
        print(hint, file=sys.stderr)
    if run.finished_training:
        print(f"jaxdqn: {run.run_dir} finished training; evaluating its final state.")
    devices = run.sharding.num_devices
    print(
        f"jaxdqn: {run.config.env_id}, {len(run.seeds)} seeds x "
        f"{run.config.total_timesteps:,} env steps on {platform_name}"
        + (f" ({devices} devices)" if devices > 1 else "")
        + (f", {_process_line(run)}" if run.group.count > 1 else "")
        + (f", resuming at {run.start_steps:,}" if run.state is not None else ""),
        flush=True,
    )
    print(_workload(run), flush=True)


def _print_setup(setup: JaxSetup | None) -> None:
    """What the command line gave JAX, on stderr (nothing when JAX had already started)."""
    if setup is not None and setup.cpu_devices_source != "too late":
        print(_setup_line(setup, jax.local_devices()[0].platform), file=sys.stderr)


def _setup_line(setup: JaxSetup, platform_name: str) -> str:
    """One line on the devices and the compilation cache the command line chose."""
    parts = []
    if platform_name == "cpu" and setup.cpu_devices_source == "every core":
        count = jax.local_device_count()
        parts.append(
            f"{count} CPU device{'s' * (count > 1)}, one per core (JAX_NUM_CPU_DEVICES=1 keeps one)"
        )
    cache = setup.cache_dir or "off"
    parts.append(f"compilation cache: {cache}")
    return "jaxdqn: " + "; ".join(parts)


def _workload(run: driver.Run) -> str:
    """The work and memory of a run, known before compiling."""
    config, seeds = run.config, len(run.seeds)
    whose = "all seeds" if run.group.count == 1 else "this process's seeds"
    done_updates = max(0, run_updates(
        run.start_steps, config.learning_starts, config.num_envs, config.train_frequency,
        config.gradient_steps,
    ))  # fmt: skip
    return (
        f"jaxdqn: to do: {seeds * (config.total_timesteps - run.start_steps):,} env steps and "
        f"{seeds * (config.total_updates() - done_updates):,} gradient updates of "
        f"{config.batch_size} transitions ({whose}); state in memory: "
        f"{run.state_bytes / 2**30:,.2f} GiB"
    )


def format_returns(summary: dict[str, Any]) -> list[str]:
    """The per-seed return table (greedy, or ε-greedy when ``summary["epsilon"] > 0``)
    and its mean ± std."""
    solved = summary["solved_return"]
    epsilon = summary["epsilon"]
    policy = "greedy" if epsilon == 0 else f"ε={epsilon:g}"
    lines = [f"{'seed':>6} {policy + ' return':>14}" + ("  solved" if solved is not None else "")]
    for seed, ret in zip(summary["seeds"], summary["greedy_return"], strict=True):
        mark = ("     yes" if ret >= solved else "      no") if solved is not None else ""
        lines.append(f"{seed:>6} {ret:>14.1f}{mark}")
    lines.append(
        f"{policy} return over {summary['eval_episodes']} episodes: "
        f"{summary['greedy_return_mean']:.1f} ± {summary['greedy_return_std']:.1f} "
        "(mean ± std over seeds)"
    )
    return lines


def format_summary(summary: dict[str, Any]) -> str:
    """The per-seed table and the totals, as printed by ``jaxdqn train``."""
    rate = summary["env_steps_per_s"]
    return "\n".join(
        [
            *format_returns(summary),
            f"env steps per seed: {summary['env_steps_per_seed']:,}"
            + (f" (resumed at {summary['resumed_at']:,})" if summary["resumed_at"] else ""),
            f"compile: {summary['compile_s']:.1f} s   run: {summary['run_s']:.1f} s "
            "(checkpoints included)   throughput: "
            + ("n/a" if rate is None else f"{rate:,.0f} env steps/s (all seeds)"),
        ]
    )


def eval_command(args: argparse.Namespace) -> int:
    """``jaxdqn eval``: per-seed returns of a finished run (or of one of its checkpoints);
    returns the exit code."""
    try:
        summary = driver.evaluate_run(
            args.run_dir,
            args.episodes,
            args.epsilon,
            driver.EVAL_SEED if args.eval_seed is None else args.eval_seed,
            args.checkpoint,
        )
    except ValueError as error:
        print(f"jaxdqn: error: {error}", file=sys.stderr)
        return 2
    source = "" if args.checkpoint is None else f" (checkpoint {args.checkpoint})"
    print(f"jaxdqn eval: {summary['env_id']}, {args.run_dir}{source}")
    print("\n".join(format_returns(summary)))
    return 0


def plot_command(args: argparse.Namespace) -> int:
    """``jaxdqn plot``: learning curves of run folders to a PNG; returns the exit code."""
    from jaxdqn.host.plotting import plot_runs  # matplotlib is imported only for this command

    try:
        _refuse_existing(args.out, args.overwrite)
        out = plot_runs(
            args.run_dirs,
            args.out,
            metric=args.metric,
            labels=args.label,
            window=args.smooth,
            x=args.x,
        )
    except (ValueError, OSError) as error:
        print(f"jaxdqn: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    """``jaxdqn export``: one seed's policy as a NumPy ``.npz``; returns the exit code."""
    from jaxdqn.host.export import export_policy

    try:
        config, params = driver.seed_params(args.run_dir, args.seed)
        out = Path(args.out) if args.out else Path(args.run_dir) / f"policy_seed{args.seed}.npz"
        _refuse_existing(out, args.overwrite)
        export_policy(config, params, out, seed=args.seed)
    except (ValueError, OSError) as error:
        print(f"jaxdqn: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {out} (load it with jaxdqn/host/numpy_policy.py, which needs only NumPy)")
    return 0


def render_command(args: argparse.Namespace) -> int:
    """``jaxdqn render``: one seed's episode as a GIF; returns the exit code."""
    from jaxdqn.host.render import render_episode

    try:
        out = Path(args.out) if args.out else Path(args.run_dir) / f"episode_seed{args.seed}.gif"
        _refuse_existing(out, args.overwrite)
        config, params = driver.seed_params(args.run_dir, args.seed, args.checkpoint)
        key = jax.random.fold_in(jax.random.key(args.seed), args.episode_seed)
        rendered = render_episode(
            config,
            params,
            key,
            out,
            max_steps=args.max_steps,
            epsilon=args.epsilon,
            fps=args.fps,
            width=args.width,
        )
    except (ValueError, OSError) as error:
        print(f"jaxdqn: error: {error}", file=sys.stderr)
        return 2
    ending = {
        "terminated": "the episode terminated",
        "truncated": "the episode reached its time limit",
        "running": "the episode goes on past --max-steps",
    }[rendered.ending]
    print(
        f"wrote {rendered.path}: {rendered.frames} frames, return {rendered.episode_return:g} "
        f"({ending})"
    )
    return 0


def list_command(args: argparse.Namespace) -> int:
    """``jaxdqn list presets|envs|fields``: what can be chosen, one per line."""
    if args.what == "presets":
        from jaxdqn.presets import PRESET_VARIANTS, SOLVED_RETURN, get_preset, preset_ids

        for variant in PRESET_VARIANTS:
            for env_id in preset_ids(variant):
                solved = SOLVED_RETURN.get(env_id)
                steps = get_preset(env_id, variant).total_timesteps
                print(
                    f"{env_id:<24} --preset {variant:<8} {steps:>11,} env steps"
                    + (f"   solved at a greedy return >= {solved:g}" if solved is not None else "")
                )
    elif args.what == "envs":
        from jaxdqn.envs import ENV_IDS, SUITES

        print("\n".join(ENV_IDS))
        for suite, (_, _, extra) in SUITES.items():
            print(f'{suite}/<Id>   (pip install "jaxdqn[{extra}]")')
        print("package.module:Name   (an Environment class or factory of your own)")
    else:
        for name, (kind, default, doc) in field_table().items():
            print(f"{name} ({kind}, default {default!r})\n    {doc}")
    return 0


def field_table() -> dict[str, tuple[str, Any, str]]:
    """``{field: (type, default, documentation)}`` of every ``DQNConfig`` field, the
    documentation read from the class docstring's Attributes section."""
    docs, name = {}, None
    section = DQNConfig.__doc__.split("Attributes:", 1)[1]
    for line in section.splitlines():
        head = re.match(r"^      (\w+): (.*)", line)
        if head:
            name, text = head.groups()
            docs[name] = text
        elif name and line.startswith("        "):
            docs[name] += " " + line.strip()
    hints = typing.get_type_hints(DQNConfig)
    return {
        f.name: (
            str(hints[f.name]).replace("<class '", "").replace("'>", "").replace("typing.", ""),
            f.default,
            docs.get(f.name, ""),
        )
        for f in dataclasses.fields(DQNConfig)
    }


def _refuse_existing(path: str | Path, overwrite: bool) -> None:
    """Raises ValueError if ``path`` exists and ``overwrite`` was not given."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--out {path} is a folder: give a file name.")
    if path.exists() and not overwrite:
        raise ValueError(f"{path} exists: choose another --out, or pass --overwrite.")


MAX_SEEDS = 65_536  # seeds one run trains; more are split over runs

# Flags that choose a new run's config and seeds; --resume refuses them.
_RUN_FLAGS = (
    "--env",
    "--preset",
    "--config",
    "--seeds",
    "--seed",
    "--set",
    "--env-param",
)


COMMANDS = {
    "train": train_command,
    "sweep": sweep_command,
    "probe": probe_command,
    "doctor": doctor_command,
    "eval": eval_command,
    "plot": plot_command,
    "export": export_command,
    "render": render_command,
    "list": list_command,
}
