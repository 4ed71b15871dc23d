"""TensorBoard and W&B writers: their files read back and compared with the rows written."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_ARGS

from jaxdqn.host import cli
from jaxdqn.host.doctor import Finding
from jaxdqn.host.monitor import stacked_metrics
from jaxdqn.host.writers import TensorBoardWriter, WandbWriter, scalar_rows

ROWS = {  # 2 seeds x 2 log windows; seed 7 finished no episode in the first window
    "env_steps": np.array([[100, 200], [100, 200]]),
    "episode_return": np.array([[3.0, 5.0], [np.nan, 9.0]]),
    "loss": np.array([[0.5, 0.25], [1.5, 0.75]]),
}
SEEDS = [3, 7]
EXPECTED = [
    (100, {"episode_return/mean": 3.0, "episode_return/min": 3.0, "episode_return/max": 3.0,
           "episode_return/seed3": 3.0, "loss/mean": 1.0, "loss/min": 0.5, "loss/max": 1.5,
           "loss/seed3": 0.5, "loss/seed7": 1.5}),
    (200, {"episode_return/mean": 7.0, "episode_return/min": 5.0, "episode_return/max": 9.0,
           "episode_return/seed3": 5.0, "episode_return/seed7": 9.0, "loss/mean": 0.5,
           "loss/min": 0.25, "loss/max": 0.75, "loss/seed3": 0.25, "loss/seed7": 0.75}),
]  # fmt: skip
FINDING = Finding("healthy", "info", [3, 7], "no problem found", "", "")


def test_scalar_rows_match_hand_computed_values():
    assert list(scalar_rows(ROWS, SEEDS)) == EXPECTED
    # Per-seed curves stop at max_seed_curves; the aggregates still cover every seed.
    (_, first), _ = scalar_rows(ROWS, SEEDS, max_seed_curves=1)
    assert "loss/seed7" not in first and first["loss/max"] == 1.5


def read_tensorboard(log_dir: Path) -> tuple[dict[int, dict[str, float]], list[str]]:
    """Every scalar and text of a folder's event files, parsed from the TFRecord framing
    (length, CRC, Event proto, CRC) without TensorBoard: ``({step: {tag: value}}, texts)``."""
    from tensorboardX.proto import event_pb2

    scalars, texts = {}, []
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 16 + length
            for value in event.summary.value:
                if value.HasField("tensor"):  # add_text
                    texts.extend(s.decode() for s in value.tensor.string_val)
                else:
                    scalars.setdefault(event.step, {})[value.tag] = value.simple_value
    return scalars, texts


def wandb_records(path: Path) -> list:
    """The ``Record`` protos of a ``.wandb`` file (LevelDB log framing, 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block, pending, records = path.read_bytes(), 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's trailer
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a FULL record, or the LAST part of one
            records.append(wandb_internal_pb2.Record.FromString(pending))
            pending = b""
    return records


def read_wandb(run_dir: Path, timeout_s: float = 60.0) -> tuple[list[dict], dict]:
    """The history rows and final summary of an offline W&B run under ``run_dir``.

    ``run.finish()`` can return before W&B's service has written the file to its end (seen
    on a loaded 2-core machine), so this reads until the run's ``exit`` record is there.
    """
    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    deadline = time.monotonic() + timeout_s
    records = wandb_records(path)
    while not any(record.HasField("exit") for record in records):
        assert time.monotonic() < deadline, f"{path} has no exit record after {timeout_s} s"
        time.sleep(0.1)
        records = wandb_records(path)
    history, summary = [], {}
    for record in records:
        kind = record.WhichOneof("record_type")
        items = {"history": record.history.item, "summary": record.summary.update}
        if kind in items:
            row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items[kind]}
            history.append(row) if kind == "history" else summary.update(row)
    return history, summary


def test_tensorboard_events_hold_the_rows(tmp_path):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")
    writer = TensorBoardWriter(tmp_path / "tb", SEEDS)
    writer.write(ROWS)
    writer.write_findings([FINDING], step=200)
    writer.close()
    scalars, texts = read_tensorboard(tmp_path / "tb")
    assert scalars == {step: pytest.approx(values) for step, values in EXPECTED}
    assert texts == ["- INFO    healthy (seeds 3, 7): no problem found"]


def test_wandb_offline_run_holds_the_rows(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    monkeypatch.setenv("WANDB_SILENT", "true")
    from jaxdqn import DQNConfig

    with contextlib.redirect_stdout(io.StringIO()):
        writer = WandbWriter(tmp_path, SEEDS, DQNConfig(), "jaxdqn-tests", mode="offline")
        writer.write(ROWS)
        writer.write_findings([FINDING], step=200)
        writer.close()
    history, summary = read_wandb(tmp_path)
    rows = [{k: v for k, v in row.items() if not k.startswith("_")} for row in history]
    assert rows == [{"env_steps": step, **values} for step, values in EXPECTED]
    assert summary["doctor"] == ["INFO    healthy (seeds 3, 7): no problem found"]
    with pytest.raises(ValueError, match="--wandb-mode cloud is invalid"):
        WandbWriter(tmp_path, SEEDS, DQNConfig(), "p", mode="cloud")


def test_wandb_mode_from_the_environment_holds_after_an_earlier_run(tmp_path, monkeypatch):
    """W&B keeps the settings of a process's first run; ``WANDB_MODE`` set later still
    decides a later run's mode (else it would go online and ask for an API key)."""
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    from jaxdqn import DQNConfig

    with contextlib.redirect_stdout(io.StringIO()):
        WandbWriter(tmp_path / "first", SEEDS, DQNConfig(), "jaxdqn-tests", "offline").close()
        monkeypatch.setenv("WANDB_MODE", "offline")
        writer = WandbWriter(tmp_path / "second", SEEDS, DQNConfig(), "jaxdqn-tests")
        writer.write(ROWS)
        writer.close()
    history, _ = read_wandb(tmp_path / "second")
    assert [row["env_steps"] for row in history] == [step for step, _ in EXPECTED]


def test_cli_writes_every_metric_to_tensorboard_and_wandb(tmp_path, monkeypatch):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed")
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    monkeypatch.setenv("WANDB_SILENT", "true")
    args = ["train", *TINY_ARGS, "--out", str(tmp_path), "--no-progress", "--tensorboard"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main([*args, "--wandb", "jaxdqn-tests", "--wandb-mode", "offline"]) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    rows = stacked_metrics(run_dir, [0, 1])
    scalars, texts = read_tensorboard(run_dir / "tensorboard")
    history, summary = read_wandb(run_dir)
    assert sorted(scalars) == list(range(80, 801, 80)) and len(history) == 10
    for name in rows.keys() - {"env_steps"}:  # the doctor's signals and wall_time_s included
        for row, step in enumerate(range(80, 801, 80)):
            for seed in (0, 1):
                value = rows[name][seed, row]
                if np.isfinite(value):
                    assert scalars[step][f"{name}/seed{seed}"] == pytest.approx(value)
                    assert history[row][f"{name}/seed{seed}"] == pytest.approx(value)
    assert "q_abs_max/mean" in scalars[800] and "wall_time_s/max" in history[-1]
    assert texts and texts[0].startswith("- ") and summary["doctor"]


def test_writers_without_their_package_are_refused_before_anything(tmp_path, capsys, monkeypatch):
    import jaxdqn.host.writers as writers

    monkeypatch.setattr(writers, "find_spec", lambda name: None)
    for flags, package in ((["--tensorboard"], "tensorboardX"), (["--wandb", "p"], "wandb")):
        assert cli.main(["train", "--out", str(tmp_path), *flags]) == 2
        err = capsys.readouterr().err
        assert f"needs the {package} package" in err and "pip install" in err
    assert not list(tmp_path.iterdir())


def test_wandb_run_folder_given_relative_after_a_change_of_directory(tmp_path, monkeypatch):
    """W&B's service process starts with the first run and keeps its working directory:
    a later run folder given relative to a new one (``runs/...`` after ``cd``) must still
    get its files."""
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    monkeypatch.setenv("WANDB_SILENT", "true")
    from jaxdqn import DQNConfig

    (tmp_path / "elsewhere").mkdir()
    with contextlib.redirect_stdout(io.StringIO()):
        WandbWriter(tmp_path / "first", SEEDS, DQNConfig(), "jaxdqn-tests", "offline").close()
        monkeypatch.chdir(tmp_path / "elsewhere")
        writer = WandbWriter(Path("runs/second"), SEEDS, DQNConfig(), "jaxdqn-tests", "offline")
        writer.write(ROWS)
        writer.close()
    history, _ = read_wandb(tmp_path / "elsewhere" / "runs" / "second")
    assert [row["env_steps"] for row in history] == [step for step, _ in EXPECTED]
