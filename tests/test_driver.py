"""The run driver from Python: what it refuses, before writing or compiling anything.
(tests/test_cli.py drives it end to end through the command line.)"""

from __future__ import annotations

import pytest
from conftest import TINY_CHAIN

from jaxdqn.host import driver


@pytest.mark.parametrize("seeds", [[], [0, 0], [0.5], [True]], ids=str)
def test_start_run_refuses_bad_seeds_before_writing(tmp_path, seeds):
    with pytest.raises(ValueError, match=r"seeds=.* is invalid: give one or more distinct ints"):
        driver.start_run(TINY_CHAIN, seeds, tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "kwargs", [{"eval_episodes": 0}, {"checkpoint_every": -1}, {"keep_checkpoints": 0}], ids=str
)
def test_fit_refuses_bad_arguments_before_compiling(tmp_path, kwargs):
    run = driver.start_run(TINY_CHAIN, [0], tmp_path)
    ((name, value),) = kwargs.items()
    with pytest.raises(ValueError, match=f"{name}={value} is invalid: must be an int >= "):
        driver.fit(run, **kwargs)
    assert not (run.run_dir / "checkpoints").exists()
    assert not list(run.run_dir.glob("metrics_seed*.jsonl"))


def test_versions_of_a_source_checkout_without_install_metadata(monkeypatch):
    # jaxdqn imported from a folder on PYTHONPATH has no distribution metadata: its
    # __version__ stands in, as it does for any such package.
    import importlib.metadata

    import jax

    import jaxdqn

    installed = importlib.metadata.version

    def without_jaxdqn(name):
        if name == "jaxdqn":
            raise importlib.metadata.PackageNotFoundError(name)
        return installed(name)

    monkeypatch.setattr(importlib.metadata, "version", without_jaxdqn)
    recorded = driver.versions()
    assert recorded["jaxdqn"] == jaxdqn.__version__ and recorded["jax"] == jax.__version__


def test_check_split_refuses_uneven_devices_and_counts(monkeypatch):
    # The session has 2 local devices; a 2-process group must then see 4 in all.
    import jax

    from jaxdqn.host.processes import ONE_PROCESS, ProcessGroup

    two = ProcessGroup(count=2, index=0)
    with pytest.raises(ValueError, match=r"the 2 processes hold 2 devices, this one 2: give"):
        driver.check_split(4, two)
    monkeypatch.setattr(jax, "device_count", lambda: 4)
    driver.check_split(8, two)
    with pytest.raises(ValueError, match=r"^6 runs in one program do not split evenly over the 4"):
        driver.check_split(6, two, "runs in one program")
    driver.check_split(3, ONE_PROCESS)  # one process splits its seeds itself
