"""The benchmark and example scripts run end to end on tiny settings, so they cannot rot.
Their numbers are not checked here: speed targets live in the benchmarks themselves."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxdqn
from jaxdqn.host.export import export_policy

ROOT = Path(__file__).resolve().parents[1]


def run_script(*args: str) -> str:
    """Runs a script in a fresh Python; returns its stdout, then its stderr."""
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


# Options some scripts' smoke runs also take: the learning benchmark runs a preset with
# an override, as its --set/--name allow; the overhead benchmarks time the ChainWalk
# preset, whose programs compile in half the CartPole preset's time.
SMOKE_ARGS = {
    "learning": ["--env", "CartPole-v1", "--set", "dueling=true", "--name", "duel"],
    "minatar": ["--deadline-s", "0"],  # a time-boxed run stops at its first evaluation
    "diagnostics_overhead": ["--env", "ChainWalk-v0"],
    "progress_overhead": ["--env", "ChainWalk-v0"],
}


@pytest.mark.parametrize(
    "script",
    [
        "throughput",
        "learning",
        "progress_overhead",
        "chain_walk_seeds",
        "diagnostics_overhead",
        "envpool_speed",
        "processes",
        "minatar",
    ],
)
def test_benchmark_smoke(script, tmp_path):
    if script == "envpool_speed":
        pytest.importorskip("envpool", reason='EnvPool: pip install "jaxdqn[envpool]"')
    args = SMOKE_ARGS.get(script, [])
    out = run_script(f"benchmarks/{script}.py", "--smoke", "--out", str(tmp_path), *args)
    results = list(tmp_path.glob("*.json"))
    assert results
    for result in results:
        payload = json.loads(result.read_text())
        assert payload["machine"]["jax"] == jax.__version__ and "device" in payload["machine"]
    assert "wrote" in out
    if script == "processes":  # 1 process x 2 devices and 2 processes x 1 device
        (result,) = results
        rows = json.loads(result.read_text())["rows"]
        assert [row["processes"] for row in rows] == [1, 2]
        assert all(row["identical_params"] for row in rows)
    if script == "minatar":  # the paper's statistic, from the training rows
        (result,) = results
        (run,) = json.loads(result.read_text())["runs"]
        assert run["preset"] == "rainbow" and run["config"]["distributional"] is True
        assert len(run["last_100_training_return"]) == 2
        assert run["stopped_early"] and run["env_steps"] == [1_024]  # of 2,048
        assert "Breakout-MinAtar: 1,024 env steps" in out  # the progress line, on stderr
    if script == "learning":
        (result,) = results
        assert result.name.startswith("learning_CartPole-v1_duel_smoke")
        payload = json.loads(result.read_text())
        assert payload["overrides"] == ["dueling=true"] and payload["config"]["dueling"] is True
        assert list(tmp_path.glob("*.png"))


def test_sweep_example_compiles_once():
    out = run_script(
        "examples/sweep.py", "--env", "ChainWalk-v0", "--seeds", "1",
        "--total-timesteps", "20000", "--eval-episodes", "2",
    )  # fmt: skip
    assert "8 learning rates x 1 seeds = 8 runs" in out and "traced 1 time(s)" in out


def test_gymnasium_example_plays_an_exported_policy(tmp_path):
    config = jaxdqn.DQNConfig(env_id="CartPole-v1", hidden_sizes=(8,))
    params = jaxdqn.build(config).q_network.init(jax.random.key(0), np.zeros((1, 4)))
    path = export_policy(config, params, tmp_path / "policy.npz")
    out = run_script("examples/numpy_policy_gymnasium.py", str(path), "--episodes", "2")
    assert "CartPole-v1: 2 episodes" in out and "returns: mean" in out


def test_the_peers_seed_key_fix_renames_only_its_dummy_key(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from peer import SEED_KEY_LOST, peer_config, seed_keys_kept
    from throughput import REFERENCE_SETUP

    source = "\n".join([
        "def train(rng):",
        "    rng, _rng = split(rng)",
        f"    {SEED_KEY_LOST}",
        "    shaped = sample(rng)",
        "    buffer_state = buffer.init(shaped, rng)",
        "    rng, _rng = split(rng)",
    ])  # fmt: skip
    assert seed_keys_kept(source).splitlines() == [
        "def train(rng):",
        "    rng, _rng = split(rng)",
        "    dummy_rng = jax.random.PRNGKey(0)  # use a dummy rng here",
        "    shaped = sample(dummy_rng)",
        "    buffer_state = buffer.init(shaped, dummy_rng)",
        "    rng, _rng = split(rng)",  # from here on the seed's own key
    ]
    with pytest.raises(ValueError, match="0 times, not once"):
        seed_keys_kept("def train(rng):\n    return rng\n")
    with pytest.raises(ValueError, match=r"no buffer\.init\( after the dummy key"):
        seed_keys_kept(f"def train(rng):\n    {SEED_KEY_LOST}\n")
    with pytest.raises(ValueError, match=r"^double_q=True: the peer only runs False"):
        peer_config(dataclasses.replace(REFERENCE_SETUP, double_q=True))


def test_the_minatar_statistic_is_the_mean_of_the_last_100_episodes(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from minatar import last_episodes_return

    def rows(returns, counts):
        return {"episode_return": [returns], "completed_episodes": [counts]}

    # The last windows holding >= 100 episodes, each mean weighed by its count.
    got = last_episodes_return(rows([1.0, np.nan, 3.0, 5.0], [60, 0, 50, 60]))
    np.testing.assert_allclose(got, [(3 * 50 + 5 * 60) / 110])
    # Fewer than 100 in the whole run: all of them.
    np.testing.assert_allclose(last_episodes_return(rows([2.0, 4.0], [10, 20])), [100 / 30])
    np.testing.assert_allclose(last_episodes_return(rows([2.0, 4.0], [10, 100])), [4.0])
