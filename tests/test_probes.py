"""The probe environments (jaxdqn.envs.probes) and ``jaxdqn probe``: exact Q-values by
hand, the envs' steps, a learner that passes every probe and faults that fail theirs."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdqn
from jaxdqn.envs.probes import (
    PROBE_IDS,
    PROBES,
    ProbeEnv,
    ProbeState,
    probe_of,
    probe_params,
    probe_q_star,
)
from jaxdqn.host import cli
from jaxdqn.host.probe import (
    PROBE_MIN_EPSILON,
    PROBE_SUPPORT,
    probe_config,
    probe_groups,
    run_probes,
)

GAMMA = 0.9
# Q* by hand: one-step probes are their rewards; two-step ones discount the second step.
HAND_Q = {
    "ConstantValue": [[1.0]],
    "ObservationValue": [[1.0], [-1.0]],
    "TwoStepDiscount": [[GAMMA], [1.0]],
    "ActionReward": [[-1.0, 1.0]],
    "ActionObservation": [[-1.0, 1.0], [1.0, -1.0]],
    "TimeLimit": [[GAMMA], [1.0]],
    "NextMax": [[GAMMA, GAMMA], [0.0, 1.0]],
}


@pytest.mark.parametrize("name", list(PROBES))
def test_exact_q_matches_hand_values(name):
    np.testing.assert_allclose(probe_q_star(PROBES[name], GAMMA), HAND_Q[name])


def test_every_probe_binds_and_is_listed():
    assert set(PROBE_IDS) <= set(jaxdqn.ENV_IDS)
    for env_id in PROBE_IDS:
        spec = jaxdqn.bind_env(env_id).spec
        assert spec.obs_shape == (1,)
        assert spec.num_actions == len(PROBES[env_id.split("-")[1]].reward[0])


def step(env: ProbeEnv, position: int, action: int):
    state = ProbeState(position=jnp.int32(position), time=jnp.int32(0))
    return jax.jit(env.step)(jax.random.key(0), state, action, env.default_params)


def test_time_limit_probe_truncates_into_a_state_worth_one():
    env = ProbeEnv("TimeLimit")
    _, _, reward, terminated, truncated, info = step(env, 0, 0)
    assert not bool(terminated) and bool(truncated) and float(reward) == 0.0
    assert float(info["final_observation"][0]) == 1.0  # the state whose value is 1
    _, _, reward, terminated, _, _ = step(env, 1, 0)
    assert bool(terminated) and float(reward) == 1.0


def test_next_max_probe_moves_then_pays_for_one_action():
    env = ProbeEnv("NextMax")
    for action in (0, 1):
        _, _, reward, terminated, truncated, info = step(env, 0, action)
        assert not bool(terminated | truncated) and float(reward) == 0.0
        assert float(info["final_observation"][0]) == 1.0
    assert [float(step(env, 1, a)[2]) for a in (0, 1)] == [0.0, 1.0]


def test_starts_follow_the_start_distribution():
    env = ProbeEnv("ObservationValue")
    keys = jax.random.split(jax.random.key(1), 400)
    obs, _ = jax.vmap(env.reset, in_axes=(0, None))(keys, env.default_params)
    share = float(jnp.mean(obs[:, 0] > 0))
    assert 0.4 < share < 0.6
    next_max = ProbeEnv("NextMax")  # always starts in state 0 (observation -1)
    obs, _ = jax.vmap(next_max.reset, in_axes=(0, None))(keys, next_max.default_params)
    assert np.all(np.asarray(obs) == -1.0)


def test_an_env_steps_the_tables_its_params_hold():
    """A probe env given another probe's params (same action count) is that probe:
    starts, observations, moves and rewards all come from the params, padded states
    included (never started in)."""
    env, params = ProbeEnv("ConstantValue"), probe_params("ObservationValue")
    assert params.observations.shape == (2,) and probe_params("ConstantValue").reward.shape == (
        2,
        1,
    )
    keys = jax.random.split(jax.random.key(2), 400)
    obs, _ = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    assert set(np.unique(np.asarray(obs))) == {-1.0, 1.0}
    state = ProbeState(position=jnp.int32(1), time=jnp.int32(0))
    _, _, reward, terminated, _, _ = jax.jit(env.step)(jax.random.key(0), state, 0, params)
    assert float(reward) == -1.0 and bool(terminated)
    alone = ProbeEnv("ConstantValue")  # its own params: one state, never the padding one
    obs, _ = jax.vmap(alone.reset, in_axes=(0, None))(keys, alone.default_params)
    assert np.all(np.asarray(obs) == 1.0)


def test_probes_share_a_program_per_action_count_and_time_limit():
    groups = probe_groups(PROBE_IDS)
    assert sorted(e for g in groups for e in g) == sorted(PROBE_IDS) and len(groups) == 3
    for group in groups:
        probes = [probe_of(e) for e in group]
        assert len({(len(p.reward[0]), p.time_limit) for p in probes}) == 1
    # Only the time-limit probe's limit binds: every other episode ends sooner.
    assert [g for g in groups if len(g) == 1] == [("Probe-TimeLimit-v0",)]


def test_probes_keep_the_learner_and_drop_what_belongs_to_the_users_env():
    config = dataclasses.replace(
        jaxdqn.get_preset("Breakout-MinAtar", "rainbow"), sticky_actions=0.1
    )
    moved = probe_config(config, "Probe-NextMax-v0", 4_000)
    assert (moved.env_id, moved.env_params, moved.sticky_actions) == ("Probe-NextMax-v0", (), 0.0)
    assert moved.network == "mlp" and (moved.v_min, moved.v_max) == PROBE_SUPPORT
    for field in ("distributional", "noisy", "n_step", "prioritized", "dueling", "learning_rate"):
        assert getattr(moved, field) == getattr(config, field)


def test_probes_keep_epsilon_greedy_at_or_above_the_floor():
    """An ε the learner's own schedule takes below PROBE_MIN_EPSILON would starve a probe's
    worse action of data (its Q stays off Q* and the verdict blames the loss); probes
    raise it to the floor, keep a higher one, and leave ε-free exploration alone."""
    low = jaxdqn.get_preset("Breakout-MinAtar", "rainbow")
    assert low.exploration_end < PROBE_MIN_EPSILON
    moved = probe_config(low, "Probe-ActionReward-v0", 4_000)
    assert (moved.exploration_start, moved.exploration_end) == (1.0, PROBE_MIN_EPSILON)
    high = dataclasses.replace(low, exploration_start=0.5, exploration_end=0.2)
    moved = probe_config(high, "Probe-ActionReward-v0", 4_000)
    assert (moved.exploration_start, moved.exploration_end) == (0.5, 0.2)
    for exploration, start, end in (("none", 1.0, 0.01), ("boltzmann", 2.0, 0.05)):
        other = dataclasses.replace(
            low, exploration=exploration, exploration_start=start, exploration_end=end
        )
        moved = probe_config(other, "Probe-ActionReward-v0", 4_000)
        assert (moved.exploration_start, moved.exploration_end) == (start, end)


def test_run_probes_refuses_bad_arguments_before_compiling():
    with pytest.raises(ValueError, match="tolerance=0"):
        run_probes(jaxdqn.DQNConfig(), tolerance=0)
    with pytest.raises(ValueError, match="not probes"):
        run_probes(jaxdqn.DQNConfig(), env_ids=("CartPole-v1",))


# The C51 learner's own ε ends below the probes' floor: the probe says it raises it.
C51_LOW_EPSILON = ["--set", "distributional=true", "--set", "exploration_end=0.02"]


@pytest.mark.parametrize("head", [[], C51_LOW_EPSILON], ids=["dqn", "c51"])
def test_cli_probe_passes_a_preset_learner(head, capsys):
    flags = ["--env", "ChainWalk-v0", "--seeds", "2", "--total-timesteps", "4000", *head]
    code = cli.main(["probe", *flags])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "7 of 7 probes pass." in out
    raised = "ε stays at 0.1 or above on the probes (this learner's goes from 1.0 to 0.02)"
    assert (raised in out) == (head == C51_LOW_EPSILON), out
    for env_id in PROBE_IDS:
        assert env_id in out


def test_truncation_stored_as_terminal_fails_the_time_limit_probe_by_name():
    config = dataclasses.replace(jaxdqn.get_preset("ChainWalk-v0"), truncation_is_terminal=True)
    (result,) = run_probes(config, seeds=2, total_timesteps=4_000, env_ids=("Probe-TimeLimit-v0",))
    assert not result.passed
    assert "time-limit truncation" in result.checks
    # It learned the value of a terminal cut, 0, where the exact value is gamma.
    assert abs(result.learned[0, 0]) < 0.1 and result.exact[0, 0] == pytest.approx(0.99)


def test_n_step_cut_removes_the_bias_the_next_max_probe_finds():
    """Uncorrected 3-step sums learn a value between the greedy policy's and the
    behaviour's; cut at the first action that is not (near-)greedy, as the CartPole preset
    cuts them, they learn the exact Q."""
    preset = jaxdqn.get_preset("CartPole-v1")
    assert preset.n_step == 3 and preset.n_step_cut and preset.n_step_cut_tolerance > 0
    results = [
        run_probes(config, seeds=2, total_timesteps=4_000, env_ids=("Probe-NextMax-v0",))[0]
        for config in (dataclasses.replace(preset, n_step_cut=False, n_step_cut_tolerance=0.0),
                       preset)
    ]  # fmt: skip
    uncut, cut = results
    assert not uncut.passed and "n_step_cut=true" in uncut.checks
    assert uncut.learned[0].min() < 0.9  # Q(s0) pulled toward the exploring behaviour
    assert cut.passed and np.abs(cut.learned - cut.exact).max() < 0.05


def test_evaluate_values_against_hand_computed_discounted_returns():
    from jaxdqn.core.evaluation import evaluate_values, value_horizon

    assert value_horizon(0.99) == 459 and 0.99**459 <= 0.01 < 0.99**458
    gamma = 0.9
    for name, expected in (("TwoStepDiscount", {gamma}), ("TimeLimit", {gamma, 1.0})):
        bound = jaxdqn.bind_env(f"Probe-{name}-v0")
        network = jaxdqn.make_q_network(bound.spec, network="mlp", hidden_sizes=(4,))
        params = network.init(jax.random.key(0), jnp.zeros((1, 1)))

        def values(p, k, bound=bound, network=network):
            return evaluate_values(bound, network, p, k, 16, gamma)

        keys = jax.random.split(jax.random.key(1), 2)
        both = jax.jit(jax.vmap(values, in_axes=(None, 0)))(params, keys)
        for got in (values(params, keys[0]), jax.tree.map(lambda x: x[0], both)):
            # TimeLimit's state 0 is cut after 1 step; lifted, it reaches state 1 and pays
            # 1 a step later: gamma. Started in state 1 it pays 1 at once.
            discounted = np.asarray(got.discounted, np.float64)
            assert all(np.isclose(v, sorted(expected), rtol=1e-6).any() for v in discounted)
            q = network.apply(params, jnp.array([[-1.0], [1.0]]))[:, 0]
            first = np.where(np.isclose(got.discounted, gamma), q[0], q[1])
            np.testing.assert_allclose(got.q_first, first, rtol=1e-6)
    with pytest.raises(ValueError, match=r"gamma=1\.0 is invalid"):
        value_horizon(1.0)


EVERY_PRESET = [
    (env_id, variant)
    for variant in jaxdqn.presets.PRESET_VARIANTS
    for env_id in jaxdqn.presets.preset_ids(variant)
]


@pytest.mark.heavy
@pytest.mark.parametrize(("env_id", "variant"), EVERY_PRESET)
def test_every_preset_passes_every_probe(env_id, variant):
    """``jaxdqn probe``'s own settings (4 seeds x 10,000 env steps per probe) on every
    preset's learner: all seven pass. About a minute of compiling per preset on a CPU."""
    results = run_probes(jaxdqn.get_preset(env_id, variant))
    failed = [(r.env_id, r.error, r.checks) for r in results if not r.passed]
    assert not failed, failed
