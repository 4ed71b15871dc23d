"""Export: the pure-NumPy policy computes the JAX network's Q-values, with no JAX at all."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import TINY_CHAIN

import jaxdqn
from jaxdqn.host import cli, driver
from jaxdqn.host.export import export_policy
from jaxdqn.host.numpy_policy import NumpyQPolicy

C51 = {"distributional": True, "num_atoms": 7, "v_min": -3.0, "v_max": 6.0}


@pytest.mark.parametrize(
    ("env_id", "hidden_sizes", "activation", "dueling", "layer_norm", "head"),
    [
        ("CartPole-v1", (32, 16), "relu", False, False, {}),
        ("Acrobot-v1", (8,), "tanh", True, False, {}),
        ("CartPole-v1", (8, 8), "gelu", False, True, {}),
        ("ChainWalk-v0", (4,), "silu", True, True, {}),
        ("Breakout-MinAtar", (16,), "relu", False, False, {}),
        ("Freeway-MinAtar", (8,), "relu", True, True, {}),
        ("CartPole-v1", (8,), "relu", False, False, C51),
        ("Breakout-MinAtar", (8,), "relu", True, True, {**C51, "noisy": True}),
        ("Acrobot-v1", (8,), "relu", True, False, {"noisy": True}),
    ],
)
def test_numpy_policy_matches_jax_network(
    tmp_path, env_id, hidden_sizes, activation, dueling, layer_norm, head
):
    config = dataclasses.replace(
        TINY_CHAIN,
        env_id=env_id,
        hidden_sizes=hidden_sizes,
        activation=activation,
        dueling=dueling,
        layer_norm=layer_norm,
        **head,
    )
    obs_shape, obs_dtype, *_ = jaxdqn.bind_env(env_id).spec
    q_net = jaxdqn.build(config).q_network
    params = q_net.init(jax.random.key(0), np.zeros((1, *obs_shape), obs_dtype))
    params = jax.tree.map(lambda x: x + 0.3 * jax.random.normal(jax.random.key(1), x.shape), params)
    rng = np.random.default_rng(0)
    if obs_dtype == np.bool_:  # MinAtar: the network casts bool observations itself
        obs = rng.random((64, *obs_shape)) < 0.3
    else:
        obs = 2.0 * rng.normal(size=(64, *obs_shape)).astype(np.float32)
    policy = NumpyQPolicy.load(export_policy(config, params, tmp_path / "p.npz", seed=3))
    expected = np.asarray(q_net.apply(params, obs))  # a noisy network's mean weights
    np.testing.assert_allclose(policy.q_values(obs), expected, rtol=1e-5, atol=1e-5)
    assert [policy.act(o) for o in obs] == list(expected.argmax(axis=1))
    assert policy.metadata["seed"] == 3 and policy.num_actions == expected.shape[1]
    # Files with layer norm are v2 and with atoms v3, so that an older reader refuses them
    # instead of misreading them.
    version = 3 if head.get("distributional") else 2 if layer_norm else 1
    assert policy.metadata["format"] == f"jaxdqn-policy-v{version}"
    with pytest.raises(ValueError, match="obs shape"):
        policy.q_values(np.zeros((2, 7)))


def test_export_refuses_params_of_another_network(tmp_path):
    params = jaxdqn.build(TINY_CHAIN).q_network.init(jax.random.key(0), np.zeros((1, 1)))
    other = dataclasses.replace(TINY_CHAIN, hidden_sizes=(16, 16))
    with pytest.raises(ValueError, match=r"params have layers \['Dense_0', 'Dense_1'\]"):
        export_policy(other, params, tmp_path / "p.npz")


NO_JAX = textwrap.dedent(
    """
    import importlib.util, sys
    import numpy as np
    sys.modules["jax"] = None  # any import of jax (or of the jaxdqn package) now fails
    spec = importlib.util.spec_from_file_location("numpy_policy", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    policy = module.NumpyQPolicy.load(sys.argv[2])
    obs = np.load(sys.argv[3])
    np.save(sys.argv[4], policy.q_values(obs))
    print(policy.act(obs[0]))
    """
)


def test_exported_run_acts_without_jax(tiny_run, tmp_path, capsys):
    """`jaxdqn export` on a trained run, then the policy file read by a process where
    importing jax fails."""
    run_dir, policy_file = tiny_run[0], tmp_path / "policy.npz"
    assert cli.main(["export", str(run_dir), "--seed", "1", "--out", str(policy_file)]) == 0
    assert cli.main(["export", str(run_dir), "--seed", "5"]) == 2
    assert "--seed=5 is invalid: the run trained seeds [0, 1]" in capsys.readouterr().err
    # An existing file is kept unless --overwrite; only .npz paths (np.savez adds .npz).
    written = policy_file.read_bytes()
    assert cli.main(["export", str(run_dir), "--seed", "0", "--out", str(policy_file)]) == 2
    assert "exists: choose another --out, or pass --overwrite" in capsys.readouterr().err
    assert policy_file.read_bytes() == written
    assert cli.main(["export", str(run_dir), "--out", str(tmp_path / "policy.bin")]) == 2
    assert "must end in .npz" in capsys.readouterr().err
    assert not (tmp_path / "policy.bin").exists() and not (tmp_path / "policy.bin.npz").exists()
    overwrite = ["--seed", "1", "--out", str(policy_file), "--overwrite"]
    assert cli.main(["export", str(run_dir), *overwrite]) == 0
    config, _ = driver.load_run(run_dir)
    obs = np.arange(6, dtype=np.float32).reshape(6, 1)
    np.save(tmp_path / "obs.npy", obs)
    module = Path(jaxdqn.__file__).parent / "host" / "numpy_policy.py"
    subprocess.run(
        [sys.executable, "-c", NO_JAX, str(module), str(policy_file),
         str(tmp_path / "obs.npy"), str(tmp_path / "q.npy")],
        check=True,
    )  # fmt: skip
    with np.load(run_dir / "params.npz") as flat:
        template = jaxdqn.build(config).q_network.init(jax.random.key(0), obs[:1])
        params = jax.tree.unflatten(
            jax.tree.structure(template),
            [flat[jax.tree_util.keystr(p)][1] for p, _ in jax.tree.leaves_with_path(template)],
        )
    expected = np.asarray(jaxdqn.build(config).q_network.apply(params, obs))
    np.testing.assert_allclose(np.load(tmp_path / "q.npy"), expected, rtol=1e-5, atol=1e-5)
