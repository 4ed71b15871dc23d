"""The doctor (jaxdqn.host.doctor) and the guard: deliberately broken configs on small envs
each produce their finding code; checks on hand-made rows; the CLI's doctor and guard."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_ARGS, TINY_CHAIN, jitted_train, readme_block

import jaxdqn
from jaxdqn.host import cli, driver
from jaxdqn.host.doctor import first_non_finite, random_policy_return
from jaxdqn.host.monitor import metrics_path


def codes(findings) -> list[str]:
    return [f.code for f in findings]


def train_two_seeds(config):
    keys = jax.random.split(jax.random.key(3), 2)
    return jitted_train(config, True)(keys)


# The source material's online setup: no target network, no replay, ε-greedy.
ONLINE_CHAIN = dataclasses.replace(
    TINY_CHAIN,
    num_envs=1,
    total_timesteps=2_000,
    buffer_size=1,
    batch_size=1,
    learning_starts=1,
    train_frequency=1,
    target_update_period=1,
    learning_rate=1e-3,
    double_q=False,
    max_grad_norm=None,
    hidden_sizes=(64, 64),
    log_interval=100,
)


def test_no_target_and_no_replay_is_soft_divergence_with_its_cause():
    _, metrics = train_two_seeds(ONLINE_CHAIN)
    (finding,) = [f for f in jaxdqn.diagnose(ONLINE_CHAIN, metrics) if f.code == "soft_divergence"]
    assert finding.severity == "error" and finding.seeds
    assert "no target network" in finding.cause and "no replay" in finding.cause
    # The evidence is true: some row's max |Q| passed twice r_max / (1 - γ) = 200.
    assert np.nanmax(np.asarray(metrics["q_abs_max"])) > 200


def test_exploration_ending_before_learning_starts_is_named():
    config = dataclasses.replace(TINY_CHAIN, exploration_steps=80, learning_starts=640)
    _, metrics = train_two_seeds(config)
    found = {f.code: f for f in jaxdqn.diagnose(config, metrics)}
    assert "exploration_ends_early" in found
    assert "before learning starts at 640" in found["exploration_ends_early"].evidence


def test_greedy_from_the_start_on_a_sparse_reward_env_does_not_improve():
    config = jaxdqn.DQNConfig(
        env_id="MountainCar-v0",
        num_envs=4,
        total_timesteps=4_000,
        buffer_size=4_000,
        batch_size=32,
        learning_starts=400,
        exploration_schedule="constant",
        exploration_start=0.0,
        hidden_sizes=(16,),
        log_interval=400,
    )
    _, metrics = train_two_seeds(config)
    random = random_policy_return(config)
    assert random == -200.0  # a random policy never reaches the flag in 200 steps
    found = codes(jaxdqn.diagnose(config, metrics, random_return=random))
    assert "no_improvement" in found
    # Without a random level (greedy play before learning is no random baseline) the
    # check says nothing rather than guess.
    assert "no_improvement" not in codes(jaxdqn.diagnose(config, metrics))


def test_the_guard_stops_a_nan_run_and_keeps_the_checkpoint_before(tmp_path, capsys):
    # learning_starts 400 > the first checkpoint at 240 env steps: that one is healthy.
    args = [*TINY_ARGS, "--set", "learning_rate=1e6", "--set", "learning_starts=400"]
    code = cli.main(["train", *args, "--set", "max_grad_norm=none", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 3, err
    (run_dir,) = tmp_path.iterdir()
    assert "went NaN or infinite by env step" in err and "--keep-going" in err
    assert "the last checkpoint, at 240 env steps" in err
    diagnosis = json.loads((run_dir / "diagnosis.json").read_text())
    assert diagnosis["findings"][0]["code"] == "non_finite"
    assert not diagnosis["healthy"]
    assert cli.main(["eval", str(run_dir), "--checkpoint", "latest", "--episodes", "2"]) == 0
    assert cli.main(["doctor", str(run_dir)]) == 1
    assert "non_finite" in capsys.readouterr().out


def test_the_guard_sees_parameters_gone_infinite_without_health_signals(tmp_path):
    """With ``diagnostics=False`` the learner logs no ``params_finite``; the driver's rows
    still hold it, so parameters made infinite by a window's last update (its loss and
    gradients were finite) stop the run at that window, not a window later."""
    config = dataclasses.replace(TINY_CHAIN, diagnostics=False)
    run = driver.start_run(config, [0, 1], tmp_path)
    trainer = run.trainer

    def overflowing(state, num_log_points):  # parameters overflow in the window ending at 480
        state, metrics = trainer.run(state, num_log_points)
        blown = jax.tree.map(lambda p: jnp.where(state.env_steps >= 480, jnp.inf, p), state.params)
        return state._replace(learner=state.learner._replace(params=blown)), metrics

    run = dataclasses.replace(run, trainer=trainer._replace(run=overflowing))
    with pytest.raises(driver.NonFiniteRun) as stopped:
        driver.fit(run, eval_episodes=2, checkpoint_every=0)
    assert stopped.value.found == [(seed, 480, "the online parameters") for seed in (0, 1)]
    rows = [json.loads(line) for line in metrics_path(run.run_dir, 1).read_text().splitlines()]
    assert [row["params_finite"] for row in rows] == [1, 1, 0]
    assert "non_finite" in rows[-1] and rows[-1]["non_finite"] == 0  # the loss saw nothing


def test_doctor_on_a_finished_run_writes_its_diagnosis(tiny_run, capsys):
    run_dir, stdout, _ = tiny_run
    assert "doctor: " in stdout
    code = cli.main(["doctor", str(run_dir)])
    out = capsys.readouterr().out
    record = json.loads((run_dir / "diagnosis.json").read_text())
    assert code == (1 if any(f["severity"] == "error" for f in record["findings"]) else 0)
    for finding in record["findings"]:
        assert set(finding) == {"code", "severity", "seeds", "evidence", "cause", "fix"}
        assert finding["code"] in jaxdqn.host.doctor.CODES
        assert finding["code"] in out
    assert cli.main(["doctor", str(run_dir / "nothing")]) == 2


def test_readme_diagnose_snippet_runs_as_written(capsys):
    snippet = readme_block("From Python, the same checks read the", "python")
    exec(compile(snippet, "README", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.split()[1] in jaxdqn.host.doctor.CODES for line in lines)


# ---- The checks on hand-made rows: each fires on its pattern and not without it. ----


def rows(**columns):
    """Rows of 2 seeds x 10 windows: env_steps 100..1000, updates from the second."""
    steps = np.tile(np.arange(1, 11) * 100.0, (2, 1))
    base = {
        "env_steps": steps,
        "updates": np.maximum(steps - 100, 0),
        "episode_return": np.tile(np.linspace(10, 400, 10), (2, 1)),
        "exploration": np.tile(np.linspace(1.0, 0.05, 10), (2, 1)),
        "reward_abs_max": np.ones((2, 10)),
        "non_finite": np.zeros((2, 10)),
        "params_finite": np.ones((2, 10)),
    }
    base.update({k: np.asarray(v, float) for k, v in columns.items()})
    return base


CONFIG = TINY_CHAIN  # gamma 0.99, learning starts at 160 env steps


def test_a_healthy_pattern_is_healthy():
    (finding,) = jaxdqn.diagnose(CONFIG, rows())
    assert finding.code == "healthy" and finding.seeds == (0, 1)


def test_soft_divergence_uses_the_reward_bound():
    bound = 1.0 / (1 - CONFIG.gamma)  # 100
    q = np.full((2, 10), 0.5 * bound)
    assert "soft_divergence" not in codes(jaxdqn.diagnose(CONFIG, rows(q_abs_max=q)))
    q[1, 6:] = 2.5 * bound
    (finding,) = [f for f in jaxdqn.diagnose(CONFIG, rows(q_abs_max=q), seeds=[7, 9])]
    assert finding.code == "soft_divergence" and finding.seeds == (9,)
    assert "first at env step 700" in finding.evidence and "250" in finding.evidence
    # Rewards of 10 raise the bound to 1,000: the same Q is no longer too large.
    big = rows(q_abs_max=q, reward_abs_max=np.full((2, 10), 10.0))
    assert "soft_divergence" not in codes(jaxdqn.diagnose(CONFIG, big))


def test_overestimation_compares_q_with_the_return_obtained():
    gap, obtained = np.array([5.0, 60.0]), np.array([90.0, 90.0])
    found = jaxdqn.diagnose(CONFIG, rows(), value_gap=gap, value_return=obtained)
    (finding,) = found
    assert finding.code == "overestimation" and finding.seeds == (1,)
    assert "60 above the discounted return" in finding.evidence


def test_non_finite_names_the_first_signal_and_step():
    bad = rows(
        non_finite=[[0] * 10, [0] * 4 + [1] * 6], params_finite=[[1] * 10, [1] * 5 + [0] * 5]
    )
    assert first_non_finite(bad, [0, 1]) == [(1, 500, "the loss or a gradient")]
    params_only = rows(params_finite=[[1] * 3 + [0] * 7, [1] * 10])
    assert first_non_finite(params_only, [4, 5]) == [(4, 400, "the online parameters")]
    assert jaxdqn.diagnose(CONFIG, bad)[0].code == "non_finite"


def test_spikes_dormancy_rank_and_action_collapse_patterns():
    spikes = np.ones((2, 10))
    spikes[0, 8] = 30.0
    assert codes(jaxdqn.diagnose(CONFIG, rows(grad_norm_max=spikes))) == ["gradient_spikes"]
    dormant = np.tile(np.linspace(0.1, 0.8, 10), (2, 1))
    assert codes(jaxdqn.diagnose(CONFIG, rows(dormant_units=dormant))) == ["dormant_units"]
    # Dormant from the start (a 1-d input leaves many ReLU units silent) is no finding.
    flat = np.full((2, 10), 0.6)
    assert codes(jaxdqn.diagnose(CONFIG, rows(dormant_units=flat))) == ["healthy"]
    rank = np.tile([np.nan, 40, 50, 50, 40, 30, 20, 10, 8, 8], (2, 1))
    assert codes(jaxdqn.diagnose(CONFIG, rows(feature_rank=rank))) == ["rank_collapse"]
    one_action = np.zeros((2, 10))
    flat_returns = np.full((2, 10), 10.0)
    collapsed = rows(action_entropy=one_action, episode_return=flat_returns)
    found = codes(jaxdqn.diagnose(CONFIG, collapsed))
    assert found == ["no_improvement", "action_collapse"]
    # One greedy action while returns climb is a policy, not a collapse.
    assert codes(jaxdqn.diagnose(CONFIG, rows(action_entropy=one_action))) == ["healthy"]


def test_no_episode_at_the_end_is_no_finding_and_one_seed_rows_work():
    late = np.tile(np.linspace(10, 400, 10), (2, 1))
    late[:, 7:] = np.nan  # no episode ended in the last windows: nothing to judge
    assert codes(jaxdqn.diagnose(CONFIG, rows(episode_return=late))) == ["healthy"]
    one_seed = {k: v[0] for k, v in rows().items()}  # [T] rows and scalar values
    found = jaxdqn.diagnose(CONFIG, one_seed, value_gap=80.0, value_return=100.0)
    assert codes(found) == ["overestimation"] and found[0].seeds == (0,)


def test_diagnose_refuses_seed_names_that_do_not_match():
    with pytest.raises(ValueError, match="seeds has 3 entries; metrics hold 2 seeds"):
        jaxdqn.diagnose(CONFIG, rows(), seeds=[0, 1, 2])
