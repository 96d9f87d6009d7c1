"""Throughput of the ES pipeline on the humanoid: `experiments.benchmark`'s lines for ES configs.

For each physics profile, at batch `candidate_chunk` (split over the mesh as the
population's chunks are) and `horizon` env steps (`gym_horizon` caps the slow `gym`):
  * `mjx_physics`: the bare MJX step (frame_skip substeps, zero ctrl), vmapped and scanned;
  * `mjx_env_step`: the env's own step (physics, guard, observation, reward), baseline
    `mjx_physics`;
  * `mujoco_c_rollout`: MuJoCo C's threaded `mujoco.rollout` on the same model from the
    same states, baseline `mjx_env_step` (so `ratio` is C's rate over MJX's);
and for the config's own profile (`es`):
  * `es_population_rollout`: the whole population's episodes in the iteration's own form
    (`rollout.evaluate_population`: chunks, sharding, frozen members, statistics) with a
    zero action, counted as population x horizon env steps; baseline `mjx_env_step`;
  * `es_iteration`: one whole ES iteration, the same episodes with the policy, its noise,
    the shaping and the update; baseline `es_population_rollout`, the identical shape,
    sharding and rollout form, so `ratio` is the share of the iteration the physics and
    the rollout take (1.0: policy, noise and update cost nothing).
Early exit and the work queue are off (`prepare` sets them), so every line runs whole
horizons and the counts are exact. The tool's flags `profiles`, `c_threads`, `es` and
`gym_horizon` arrive as `options`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import mujoco
import numpy as np
from jax.sharding import Mesh
from mujoco import rollout as mj_rollout

from common import envs, rollout
from common.measure import Job, env_steps, measure, physics_steps
from humanoid_es import config as es_config
from humanoid_es.trainer import Trainer


def _mujoco_c(env, states, horizon: int, threads: int):
    """MuJoCo C's rollout of the same model from the same states, zero ctrl; a host function."""
    mj_model = env.config.load_mj_model()
    batch = states.obs.shape[0]
    datas = [mujoco.MjData(mj_model) for _ in range(threads)]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    init = np.zeros((batch, mujoco.mj_stateSize(mj_model, spec)))
    d = mujoco.MjData(mj_model)
    qpos, qvel = np.asarray(states.data.qpos), np.asarray(states.data.qvel)
    for i in range(batch):
        d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
        mujoco.mj_getState(mj_model, d, init[i], spec)
    control = np.zeros((batch, horizon * env.config.frame_skip, mj_model.nu))
    return lambda _: mj_rollout.rollout(mj_model, datas, init, control, persistent_pool=True)


def profile_jobs(config: ml_collections.ConfigDict, profile: str, mesh: Mesh | None, *, gym_horizon: int,
                 c_threads: int, with_es: bool) -> list[Job]:
    """The lines of one physics profile (the module docstring's list)."""
    env = envs.make(config.env, **(es_config.env_overrides(config) | {"physics": profile}))
    batch, horizon = config.candidate_chunk, config.horizon
    if profile == "gym" and gym_horizon:
        horizon = min(horizon, gym_horizon)
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(config.seed), batch))
    fields = {"batch": batch, "horizon": horizon, "physics": profile, "impl": config.impl,
              "n_devices": jax.device_count()}
    threads = c_threads or os.cpu_count() or 1
    jobs = [
        Job("mjx_physics", physics_steps(env, horizon, mesh), states.data, batch * horizon, fields=fields),
        Job("mjx_env_step", env_steps(env, horizon, mesh), states, batch * horizon, "mjx_physics", fields),
        Job("mujoco_c_rollout", _mujoco_c(env, states, horizon, threads), None, batch * horizon, "mjx_env_step",
            fields | {"threads": threads}, jitted=False),
    ]
    if with_es and profile == config.physics and horizon == config.horizon:
        jobs += es_jobs(config, mesh, fields)
    return jobs


def es_jobs(config: ml_collections.ConfigDict, mesh: Mesh | None, fields: dict) -> list[Job]:
    """`es_population_rollout` and `es_iteration` at the config's shape."""
    trainer = Trainer(config, mesh)
    state = trainer.place(trainer.init(jax.random.PRNGKey(config.seed)))
    env = trainer.env
    steps = trainer.population * config.horizon
    fields = fields | {"population": trainer.population, "candidate_chunk": config.candidate_chunk}

    def zero_action(_, carry, obs):
        return carry, jnp.zeros((env.action_size,), obs.dtype)

    def population(key):
        out = rollout.evaluate_population(
            env, zero_action, lambda _: (), lambda theta, index, k: (theta, jax.random.fold_in(k, index)),
            jnp.zeros(()), key, population=trainer.population, chunk=config.candidate_chunk,
            horizon=config.horizon, block=trainer.block, mesh=mesh, queue=config.rollout_queue)
        return out.episode_return

    return [
        Job("es_population_rollout", population, jax.random.PRNGKey(config.seed), steps, "mjx_env_step", fields),
        Job("es_iteration", trainer.iteration, state, steps, "es_population_rollout",
            fields | {"params": trainer.num_params}),
    ]


def prepare(config: ml_collections.ConfigDict) -> None:
    """Every line runs whole horizons: early exit (and the work queue built on it) would
    make the step counts depend on when members fall."""
    config.early_exit_block = 0
    config.rollout_queue = False


def lines(config: ml_collections.ConfigDict, mesh: Mesh | None, options: dict[str, Any], repeats: int,
          cache_dir: str | None) -> Iterator[dict[str, Any]]:
    """Every profile's lines in `options["profiles"]`, measured one profile at a time."""
    try:
        for profile in options["profiles"]:
            jobs = profile_jobs(config, profile, mesh, gym_horizon=options["gym_horizon"],
                                c_threads=options["c_threads"], with_es=options["es"])
            yield from measure(jobs, repeats=repeats, cache_dir=cache_dir)
    finally:
        # MuJoCo C's rollout threads are kept between timed calls.
        mj_rollout.shutdown_persistent_pool()
