"""Inside the compiled program: pure functions over pytrees of arrays, jittable and
vmappable, each component a bundle of functions made by a factory with explicit arguments.

networks (Q-networks), losses (TD errors, rlax convention), draws (random numbers from one
generator call), exploration (schedules, ε-greedy, Boltzmann), circular_buffer (generic
storage), sum_tree (priorities), replay (DQN's experience replay), learner (TD loss,
optimizer, target sync), actor (envs and the exploring policy), loop (the skeleton that
composes them), evaluation.
"""
