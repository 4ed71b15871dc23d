"""What reaches JAX before it starts (jaxdqn.host.startup): one CPU device per core unless
the user chose, a persistent compilation cache that serves a second process, ``--help``
and argument errors without importing JAX. Each case runs in a fresh Python process,
since JAX reads these settings once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import readme_block

from jaxdqn.host.startup import prepare_jax

# One jitted tiny ChainWalk run; prints what prepare_jax did and what the process saw.
_RUN = textwrap.dedent(
    """
    import json, sys
    import jaxdqn
    setup = jaxdqn.prepare_jax(compilation_cache=sys.argv[1] if len(sys.argv) > 1 else False)
    import jax
    import numpy as np
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    events = []
    jax.monitoring.register_event_listener(lambda name, **kwargs: events.append(name))
    config = jaxdqn.DQNConfig(
        env_id="ChainWalk-v0", num_envs=4, total_timesteps=1_600, buffer_size=2_000,
        batch_size=16, learning_starts=160, train_frequency=2, target_update_period=25,
        exploration_steps=800, hidden_sizes=(16,), log_interval=160)
    state, metrics = jax.jit(jaxdqn.make_train(config))(jax.random.key(3))
    late = jaxdqn.prepare_jax()
    print(json.dumps({
        "setup": list(setup), "late": list(late), "devices": jax.local_device_count(),
        "cores": len(__import__("os").sched_getaffinity(0)),
        "hits": events.count("/jax/compilation_cache/cache_hits"),
        "returns": np.asarray(metrics["episode_return"]).tolist(),
    }))
    """
)


def _python(code: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    # Without the settings the test session gives its own processes (conftest).
    unset = ("JAX_NUM_CPU_DEVICES", "XLA_FLAGS", "JAX_COMPILATION_CACHE_DIR")
    base = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**base, "JAXDQN_COMPILATION_CACHE": "off", **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="counts cores with affinity")
def test_every_core_and_a_compilation_cache_that_a_second_process_uses(tmp_path):
    cache = str(tmp_path / "xla")
    runs = []
    for _ in range(2):
        done = _python(_RUN, cache)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, second = runs
    cores = first["cores"]
    assert first["setup"] == [cores, "every core", cache]
    assert first["devices"] == cores
    assert first["late"] == [None, "too late", None]  # JAX has started: nothing changes
    assert os.listdir(cache), "the first process wrote no compiled program"
    assert first["hits"] == 0 and second["hits"] >= 1  # the second one loaded it
    assert second["returns"] == first["returns"]


def test_the_users_device_count_and_no_cache_are_kept():
    done = _python(_RUN, env={"JAX_NUM_CPU_DEVICES": "1"})
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout.strip().splitlines()[-1])
    assert run["setup"] == [None, "user", None]
    assert run["devices"] == 1 and run["hits"] == 0


def test_help_and_argument_errors_answer_without_importing_jax():
    code = textwrap.dedent(
        """
        import sys
        from jaxdqn.host.cli import main
        codes = []
        for argv in (["--help"], ["train", "--help"], ["train", "--seeds", "0"]):
            try:
                main(argv)
            except SystemExit as stop:
                codes.append(stop.code)
        print(codes, "jax" in sys.modules)
        """
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[0, 0, 2] False"
    assert "argument --seeds: 0 is invalid: must be >= 1" in done.stderr


def test_a_bad_cache_setting_is_refused():
    with pytest.raises(TypeError, match=r"^compilation_cache=3 must be True, False or a folder"):
        prepare_jax(compilation_cache=3)


def test_the_readme_snippet_runs_as_written():
    snippet = readme_block("From Python, make the same settings", "python")
    done = _python(snippet + "\nimport jax\nprint(setup.cpu_devices == jax.local_device_count())")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="sets the CPU affinity")
def test_processes_on_one_machine_split_its_cores():
    code = textwrap.dedent(
        """
        import json, os
        from jaxdqn.host.startup import share_cores
        cores = sorted(os.sched_getaffinity(0))
        kept = share_cores(2, 1)
        print(json.dumps({"cores": cores, "kept": kept, "now": sorted(os.sched_getaffinity(0)),
                          "too_many": share_cores(len(os.sched_getaffinity(0)) + 1, 0)}))
        """
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    half = len(seen["cores"]) // 2
    if half:  # a second process of two keeps the second half of the cores
        assert seen["kept"] == seen["now"] == seen["cores"][half : 2 * half]
    assert seen["too_many"] is None  # more processes than cores: nothing changes
