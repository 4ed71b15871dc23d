"""Metric rows to where people already look: TensorBoard and Weights & Biases.

Both writers take the rows the driver hands to ``fit(on_rows=...)`` (every metric of
``metrics_seed<N>.jsonl``, the doctor's signals included) and log, at x = env steps per
seed, each metric per seed (``<metric>/seed<N>``, for the first :data:`MAX_SEED_CURVES`
seeds) and aggregated over every seed (``<metric>/mean``, ``/min``, ``/max``, over the
seeds with a value in that window). At the end they log the doctor's findings. Each
writer imports its package only when it is made, so neither is a dependency.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

MAX_SEED_CURVES = 32  # per-seed curves per metric; the aggregates cover every seed


def scalar_rows(
    metrics: dict[str, np.ndarray], seeds: Sequence[int], max_seed_curves: int = MAX_SEED_CURVES
) -> Iterator[tuple[int, dict[str, float]]]:
    """Each log window of a chunk's rows as ``(env_steps, {tag: value})``.

    Args:
      metrics: ``{name: [num_seeds, rows]}`` as the driver hands them over; must hold
        ``env_steps``.
      seeds: the run's seeds, in the order of the leading axis.
      max_seed_curves: per-seed tags are written for the first this many seeds.

    Yields:
      ``(step, scalars)``: ``step`` the env steps per seed at the window's end; tags
      ``<name>/seed<N>``, ``<name>/mean``, ``<name>/min``, ``<name>/max``. NaN values (a
      window without a finished episode) are left out, so no curve shows a false zero.
    """
    steps = np.asarray(metrics["env_steps"])
    for row in range(steps.shape[1]):
        scalars = {}
        for name, values in metrics.items():
            if name == "env_steps":
                continue
            column = np.asarray(values[:, row], np.float64)
            finite = column[np.isfinite(column)]
            if finite.size:
                scalars.update(
                    {f"{name}/mean": finite.mean(), f"{name}/min": finite.min(),
                     f"{name}/max": finite.max()}
                )  # fmt: skip
            for seed, value in zip(seeds[:max_seed_curves], column, strict=False):
                if np.isfinite(value):
                    scalars[f"{name}/seed{seed}"] = float(value)
        yield int(steps[0, row]), {tag: float(v) for tag, v in scalars.items()}


def findings_text(findings: Sequence[Any]) -> str:
    """The doctor's findings (:class:`jaxdqn.host.doctor.Finding`) as Markdown lines."""
    return "\n".join(f"- {finding.line()}" for finding in findings)


def require_package(package: str, extra: str, flag: str) -> None:
    """Raises ``ValueError`` naming ``flag`` and how to install ``package`` when it is
    not importable."""
    if find_spec(package) is None:
        raise ValueError(
            f"{flag} needs the {package} package, which is not installed: "
            f'pip install "jaxdqn[{extra}]" (or pip install {package}).'
        )


class TensorBoardWriter:
    """Writes metric rows as TensorBoard scalars into ``log_dir`` (tensorboardX).

    Args:
      log_dir: the event files' folder (``jaxdqn train --tensorboard`` uses
        ``RUN_DIR/tensorboard``); a resumed run appends a new event file there.
      seeds: the run's seeds, in the order of the rows' leading axis.

    Raises:
      ValueError: tensorboardX is not installed.
    """

    @staticmethod
    def require() -> None:
        """Raises ``ValueError`` (how to install it) when tensorboardX is missing."""
        require_package("tensorboardX", "tensorboard", "--tensorboard")

    def __init__(self, log_dir: str | Path, seeds: Sequence[int]):
        self.require()
        from tensorboardX import SummaryWriter

        self.log_dir, self._seeds = Path(log_dir), list(seeds)
        self._writer = SummaryWriter(logdir=str(self.log_dir))

    def write(self, metrics: dict[str, np.ndarray]) -> None:
        """Logs a chunk's rows (``{name: [num_seeds, rows]}``) and flushes them."""
        for step, scalars in scalar_rows(metrics, self._seeds):
            for tag, value in scalars.items():
                self._writer.add_scalar(tag, value, global_step=step)
        self._writer.flush()

    def write_findings(self, findings: Sequence[Any], step: int) -> None:
        """Logs the doctor's findings as text at env step ``step``."""
        self._writer.add_text("doctor", findings_text(findings), global_step=step)

    def close(self) -> None:
        """Flushes and closes the event file."""
        self._writer.close()


class WandbWriter:
    """Logs metric rows to a Weights & Biases run, x axis ``env_steps``.

    The W&B run's id comes from the run folder's name, so a resumed jaxdqn run goes on in
    the same W&B run; its files go to ``RUN_DIR/wandb``.

    Args:
      run_dir: the jaxdqn run folder.
      seeds: the run's seeds, in the order of the rows' leading axis.
      config: the run's :class:`jaxdqn.DQNConfig` (logged as the W&B config).
      project: the W&B project.
      mode: ``"online"``, ``"offline"`` (sync later with ``wandb sync``) or ``None`` for
        the ``WANDB_MODE`` environment variable (read at every call, also after an earlier
        W&B run of the same process), else W&B's default (online).

    Raises:
      ValueError: wandb is not installed, or ``mode`` is not one of those.
    """

    MODES = ("online", "offline")

    @staticmethod
    def require() -> None:
        """Raises ``ValueError`` (how to install it) when wandb is missing."""
        require_package("wandb", "wandb", "--wandb")

    def __init__(
        self,
        run_dir: str | Path,
        seeds: Sequence[int],
        config: Any,
        project: str,
        mode: str | None = None,
    ):
        if mode is not None and mode not in self.MODES:
            raise ValueError(f"--wandb-mode {mode} is invalid: choose one of online, offline.")
        self.require()
        import wandb

        # Absolute: W&B's service process keeps the working directory of the process's
        # first run, and would resolve a relative folder against that one.
        run_dir, self._seeds = Path(run_dir).resolve(), list(seeds)
        with warnings.catch_warnings():  # wandb's own deprecations are not the user's
            warnings.simplefilter("ignore", DeprecationWarning)
            self._run = wandb.init(
                project=project,
                dir=str(run_dir),
                name=run_dir.name,
                id=re.sub(r"[^A-Za-z0-9_-]", "-", run_dir.name)[-64:],
                resume="allow",
                mode=mode or os.environ.get("WANDB_MODE"),
                config={**json.loads(json.dumps(dataclasses.asdict(config))), "seeds": seeds},
            )
        self._run.define_metric("env_steps")
        self._run.define_metric("*", step_metric="env_steps")

    def write(self, metrics: dict[str, np.ndarray]) -> None:
        """Logs a chunk's rows (``{name: [num_seeds, rows]}``)."""
        for step, scalars in scalar_rows(metrics, self._seeds):
            self._run.log({"env_steps": step, **scalars})

    def write_findings(self, findings: Sequence[Any], step: int) -> None:
        """Puts the doctor's findings in the run summary (``doctor``, a list of lines)."""
        self._run.summary["doctor"] = [finding.line() for finding in findings]
        self._run.summary["doctor_env_steps"] = step

    def close(self) -> None:
        """Finishes the W&B run.

        W&B's service may go on writing an offline run's ``.wandb`` file for a moment after
        this returns; the file is complete once it holds the run's ``exit`` record.
        """
        self._run.finish()
