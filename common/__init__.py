"""Shared core of both pipelines: physics, envs, rollouts, statistics and run plumbing.

Nothing in here imports `humanoid_es` or `ppo_amp`.
"""
