"""Seeds spread over devices: the placement rule, bad input, a sharded run that trains
each seed exactly as the single-device program does, and the memory check per device."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import TINY_CHAIN, jitted_train

import jaxdqn
from jaxdqn.host.memory import check_memory, state_bytes

needs_two = pytest.mark.skipif(
    jax.local_device_count() < 2, reason="needs 2 devices (JAX_NUM_CPU_DEVICES=2)"
)


@pytest.mark.parametrize(
    ("num_seeds", "num_devices", "used"),
    [(1, 4, 1), (2, 4, 2), (3, 4, 3), (4, 4, 4), (6, 4, 3), (8, 3, 2), (7, 2, 1), (16, 2, 2)],
)
def test_uses_the_most_devices_that_divide_the_seeds(num_seeds, num_devices, used):
    devices = [jax.local_devices()[0]] * num_devices  # the rule only counts devices
    sharding = jaxdqn.seed_sharding(num_seeds, devices)
    assert sharding.mesh.devices.shape == (used,)
    assert sharding.spec == jax.sharding.PartitionSpec("seeds")


@pytest.mark.parametrize("bad", [0, -2, 2.0, True, "4", None])
def test_bad_seed_count_is_named(bad):
    with pytest.raises(ValueError, match="num_seeds="):
        jaxdqn.seed_sharding(bad)


def test_no_devices_is_an_error():
    with pytest.raises(ValueError, match=r"devices=\[\]"):
        jaxdqn.seed_sharding(2, [])


@needs_two
def test_sharded_run_trains_each_seed_as_one_device_does(tiny_chain_run):
    keys, _, metrics = tiny_chain_run  # 2 seeds, vmapped, on one device
    sharding = jaxdqn.seed_sharding(2)
    assert sharding.num_devices == 2
    train = jax.jit(jaxdqn.on_each_device(jax.vmap(jaxdqn.make_train(TINY_CHAIN)), sharding))
    sharded_states, sharded_metrics = train(jax.device_put(keys, sharding))
    # Every output leaf is split: one seed on each device.
    for leaf in jax.tree.leaves(sharded_states.params):
        assert len(leaf.sharding.device_set) == 2
        assert [s.data.shape[0] for s in leaf.addressable_shards] == [1, 1]
    # Each seed is the same run as alone on one device (1 seed per program).
    single = jitted_train(TINY_CHAIN, False)
    for seed in range(2):
        alone_state, alone_metrics = single(keys[seed])
        for got, want in zip(
            jax.tree.leaves(sharded_states.params), jax.tree.leaves(alone_state.params), strict=True
        ):
            np.testing.assert_allclose(
                np.asarray(got)[seed], np.asarray(want), rtol=1e-5, atol=1e-6
            )
        np.testing.assert_array_equal(
            np.asarray(sharded_metrics["episodes"])[seed], np.asarray(alone_metrics["episodes"])
        )
    # The two-seed single-device run agrees too.
    np.testing.assert_array_equal(
        np.asarray(sharded_metrics["episodes"]), np.asarray(metrics["episodes"])
    )


@pytest.mark.parametrize(
    ("platform_name", "devices", "seeds", "cores", "tip"),
    [("cpu", 1, 8, 4, True), ("cpu", 2, 8, 4, False), ("cpu", 1, 1, 4, False),
     ("cpu", 1, 8, 1, False), ("gpu", 1, 8, 4, False)],
)  # fmt: skip
def test_cores_tip_only_when_seeds_share_one_cpu_device(platform_name, devices, seeds, cores, tip):
    hint = jaxdqn.host.devices.cores_hint(platform_name, devices, seeds, cores)
    assert (hint is not None) == tip
    if tip:
        assert f"JAX_NUM_CPU_DEVICES={cores}" in hint


class _FakeDevice:
    """A device with ``free`` bytes of memory, as ``check_memory`` reads one."""

    def __init__(self, platform: str, free: int):
        self.platform, self.device_kind, self.free = platform, f"fake {platform}", free

    def memory_stats(self):
        return {"bytes_limit": self.free, "bytes_in_use": 0}


@needs_two
def test_memory_check_counts_what_each_accelerator_holds():
    per_seed = state_bytes(TINY_CHAIN)
    room_for_4 = int(4 * per_seed / 0.9) + 1
    # Accelerators have their own memory: 8 seeds are 4 on each of the 2 devices.
    assert check_memory(TINY_CHAIN, 8, _FakeDevice("gpu", room_for_4)) == 4 * per_seed
    with pytest.raises(
        ValueError, match=r"^10 seeds \(5 on each of 2 devices\) x .*at most 8 seeds fit"
    ):
        check_memory(TINY_CHAIN, 10, _FakeDevice("gpu", room_for_4))
    # CPU devices share the host's memory: all 8 seeds count.
    with pytest.raises(ValueError, match=r"^8 seeds x .*at most 4 seeds fit"):
        check_memory(TINY_CHAIN, 8, _FakeDevice("cpu", room_for_4))
