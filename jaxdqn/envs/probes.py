"""Probe environments: tiny MDPs whose exact Q-values are known, each testing one part of
a learner (Andy Jones, "Debugging RL, Without the Agonizing Pain", 2021).

Every probe is a :class:`ProbeEnv` over a table: a few states, each with a one-number
observation; deterministic moves and rewards per (state, action); a start distribution;
and a time limit. The tables live in the env params (:func:`probe_params`, padded to
:data:`PROBE_STATES` states), so probes with the same action count and time limit share one
compiled program, vmapped over their params. :func:`probe_q_star` computes the exact
``Q*`` by value iteration, with a time limit treated as the cut it is (the value
bootstraps through it). A learner that misses a probe's values has a fault in the part
:attr:`Probe.checks` names.

Ids are ``Probe-<Name>-v0`` (:data:`PROBE_IDS`); ``jaxdqn probe`` runs a configuration on
all of them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

END = -1  # the next state of a terminating (state, action)


class Probe(NamedTuple):
    """One probe MDP: ``S`` states, ``A`` actions."""

    name: str
    # [S]: each state's observation (shape (1,)); never 0, which a layer-normalised
    # network maps to the same features whatever its weights
    observations: tuple[float, ...]
    start: tuple[float, ...]  # [S]: probability of starting in each state
    next_state: tuple[tuple[int, ...], ...]  # [S][A]: the next state, END if terminating
    reward: tuple[tuple[float, ...], ...]  # [S][A]
    time_limit: int  # steps before truncation (3 where an episode always ends sooner)
    checks: str  # the part of a learner a wrong value points to


PROBES: dict[str, Probe] = {
    p.name: p
    for p in (
        Probe(
            "ConstantValue", (1.0,), (1.0,), ((END,),), ((1.0,),), 3,
            "fitting a constant: the learning rate, optimizer or loss scale",
        ),
        Probe(
            "ObservationValue", (1.0, -1.0), (0.5, 0.5), ((END,), (END,)), ((1.0,), (-1.0,)), 3,
            "reading the observation: the network's input",
        ),
        Probe(
            "TwoStepDiscount", (-1.0, 1.0), (1.0, 0.0), ((1,), (END,)), ((0.0,), (1.0,)), 3,
            "bootstrapping and discounting: gamma, the target network, n-step returns",
        ),
        Probe(
            "ActionReward", (1.0,), (1.0,), ((END, END),), ((-1.0, 1.0),), 3,
            "the Q-value of the action taken (action indexing in the loss)",
        ),
        Probe(
            "ActionObservation", (1.0, -1.0), (0.5, 0.5), ((END, END), (END, END)),
            ((-1.0, 1.0), (1.0, -1.0)), 3,
            "actions that depend on the observation: the network's capacity and head",
        ),
        Probe(
            "TimeLimit", (-1.0, 1.0), (0.5, 0.5), ((1,), (END,)), ((0.0,), (1.0,)), 1,
            "bootstrapping through a time-limit truncation (truncation stored as terminal)",
        ),
        Probe(
            "NextMax", (-1.0, 1.0), (1.0, 0.0), ((1, 1), (END, END)), ((0.0, 0.0), (0.0, 1.0)), 3,
            "the max over next actions in the Bellman target",
        ),
    )
}  # fmt: skip
PROBE_IDS: tuple[str, ...] = tuple(f"Probe-{name}-v0" for name in PROBES)


PROBE_STATES = max(len(p.observations) for p in PROBES.values())  # every table's padded S


@struct.dataclass
class ProbeState(environment.EnvState):
    position: jax.Array  # shape=(), int32: the current state
    time: jax.Array  # shape=(), int32: steps taken in this episode


@struct.dataclass
class ProbeParams(environment.EnvParams):
    """A probe's tables, padded to :data:`PROBE_STATES` states (padding states are never
    started in nor entered). ``max_steps_in_episode`` is static: it sizes the program."""

    observations: jax.Array = None  # float32 [S]
    start_logits: jax.Array = None  # float32 [S]: log of the start distribution
    next_state: jax.Array = None  # int32 [S, A]: END where (state, action) terminates
    reward: jax.Array = None  # float32 [S, A]
    max_steps_in_episode: int = struct.field(pytree_node=False, default=1)


def probe_params(probe: Probe | str) -> ProbeParams:
    """The tables of ``probe`` (a :class:`Probe` or its name) as :class:`ProbeParams`."""
    p = PROBES[probe] if isinstance(probe, str) else probe
    pad = PROBE_STATES - len(p.observations)
    actions = len(p.next_state[0])
    return ProbeParams(
        observations=jnp.asarray(p.observations + (1.0,) * pad, jnp.float32),
        start_logits=jnp.log(jnp.asarray(p.start + (0.0,) * pad, jnp.float32)),
        next_state=jnp.asarray(p.next_state + ((END,) * actions,) * pad, jnp.int32),
        reward=jnp.asarray(p.reward + ((0.0,) * actions,) * pad, jnp.float32),
        max_steps_in_episode=p.time_limit,
    )


class ProbeEnv(environment.Environment[ProbeState, ProbeParams]):
    """A :class:`Probe` as a gymnax environment (float32 observations of shape ``(1,)``).
    It steps whatever tables its params hold: the params of any probe with the same
    action count (:func:`probe_params`) make this env that probe."""

    def __init__(self, probe: Probe | str):
        super().__init__()
        self.probe = PROBES[probe] if isinstance(probe, str) else probe

    @property
    def default_params(self) -> ProbeParams:
        return probe_params(self.probe)

    def step_env(
        self, key: jax.Array, state: ProbeState, action: int | jax.Array, params: ProbeParams
    ) -> tuple[jax.Array, ProbeState, jax.Array, jax.Array, dict[str, Any]]:
        del key
        following = params.next_state[state.position, action]
        terminated = following == END
        new_state = ProbeState(
            position=jnp.where(terminated, state.position, following), time=state.time + 1
        )
        reward = params.reward[state.position, action]
        return self.get_obs(new_state, params), new_state, reward, terminated, {}

    def reset_env(self, key: jax.Array, params: ProbeParams) -> tuple[jax.Array, ProbeState]:
        start = jax.random.categorical(key, params.start_logits).astype(jnp.int32)
        state = ProbeState(position=start, time=jnp.int32(0))
        return self.get_obs(state, params), state

    def get_obs(self, state: ProbeState, params=None, key=None) -> jax.Array:
        params = self.default_params if params is None else params
        return params.observations[state.position][None]

    @property
    def name(self) -> str:
        return f"Probe-{self.probe.name}-v0"

    @property
    def num_actions(self) -> int:
        return len(self.probe.next_state[0])

    def action_space(self, params: ProbeParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_actions)

    def observation_space(self, params: ProbeParams) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)


def probe_of(env_id: str) -> Probe:
    """The :class:`Probe` of an id in :data:`PROBE_IDS`."""
    return PROBES[env_id.removeprefix("Probe-").removesuffix("-v0")]


def probe_q_star(probe: Probe, gamma: float) -> np.ndarray:
    """Exact ``Q*`` ``[S, A]`` (float64) by value iteration: ``Q(s, a) = r + γ max Q(s')``
    unless ``(s, a)`` terminates. Probes end within a few steps, so ``S + 1`` sweeps are
    exact; a time limit does not enter (the value bootstraps through it)."""
    next_state = np.asarray(probe.next_state)
    reward = np.asarray(probe.reward, np.float64)
    q = np.zeros(reward.shape)
    for _ in range(len(probe.observations) + 1):
        following = np.where(next_state == END, 0, next_state)
        bootstrap = np.where(next_state == END, 0.0, q.max(axis=1)[following])
        q = reward + gamma * bootstrap
    return q
