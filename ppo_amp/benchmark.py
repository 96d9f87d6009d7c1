"""Throughput of the PPO+AMP pipeline on the biped: `experiments.benchmark`'s lines for PPO+AMP configs.

At batch `num_envs` (split over the mesh as the trainer splits its envs) under the
config's own physics profile:
  * `mjx_physics`: the bare MJX step of the biped (frame_skip substeps, the default
    pose's ctrl held), vmapped and scanned over `rollouts` x `rollout_length` steps;
  * `mjx_env_step`: the env's own step with a zero action (physics, randomisation,
    latency, pushes, observation, rewards, termination), same shape, baseline `mjx_physics`;
  * `ppo_rollout`: one iteration's rollout in the trainer's own form (`rollout.auto_reset`
    over `rollout_length` steps, finished episodes reset) with a zero action, baseline
    `mjx_env_step`;
  * `ppo_amp_iteration`: one whole `Trainer.iteration` (the same rollout with the actor
    and critic, AMP windows, discriminator steps, GAE, PPO epochs), counted as
    num_envs x rollout_length env steps; baseline `ppo_rollout`, the identical shape,
    sharding and rollout form (1.0: networks and updates cost nothing);
  * with `actuator_net`, `mjx_env_step_learned_actuators`: `mjx_env_step` with the net
    driving the joints (task.actuator=learned), baseline `mjx_env_step` (the config's own
    actuators, ideal unless it says otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from jax.sharding import Mesh

from common import envs, rollout, sharding
from common.measure import Job, env_steps, measure, physics_steps
from ppo_amp import config as ppo_config
from ppo_amp.trainer import Trainer


def jobs(config: ml_collections.ConfigDict, mesh: Mesh | None, rollouts: int,
         actuator_net: str | None = None) -> list[Job]:
    """The module docstring's lines."""
    trainer = Trainer(config, mesh)
    env = trainer.env
    batch, horizon = config.num_envs, rollouts * config.rollout_length
    fields = {"batch": batch, "horizon": horizon, "physics": config.physics, "impl": config.impl,
              "amp": bool(config.amp.enabled), "n_devices": jax.device_count()}
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(config.seed), batch))
    state = trainer.place(trainer.init(jax.random.PRNGKey(config.seed)))
    iteration_steps = batch * config.rollout_length
    iteration_fields = fields | {"horizon": config.rollout_length, "epochs": config.ppo.epochs,
                                 "minibatches": config.ppo.minibatches}

    def zero_policy(s, _):
        return jnp.zeros((s.obs.shape[0], env.action_size), s.obs.dtype), ()

    def one_rollout(running):
        keys = jax.random.split(jax.random.PRNGKey(0), (2, config.rollout_length, batch))

        def local(running, act_keys, reset_keys):
            return rollout.auto_reset(env.step, lambda k: env.reset(k, state.command_level), zero_policy,
                                      lambda extra, *_: (extra, ()), running, act_keys, reset_keys)[0].episode_return

        run = sharding.per_device(local, mesh, (sharding.SPLIT, sharding.SPLIT_TIME, sharding.SPLIT_TIME),
                                  sharding.SPLIT)
        return run(running, keys[0], keys[1])

    running = rollout.Running(state=state.env_state, extra=(), episode_return=state.episode_return,
                              episode_length=state.episode_length)
    learned = []
    if actuator_net is not None:
        net_env = envs.make(ppo_config.ENV, **(ppo_config.env_overrides(config)
                                               | {"actuator": "learned", "actuator_net": actuator_net}))
        net_states = jax.jit(jax.vmap(net_env.reset))(jax.random.split(jax.random.PRNGKey(config.seed), batch))
        learned = [Job("mjx_env_step_learned_actuators", env_steps(net_env, horizon, mesh), net_states,
                       batch * horizon, "mjx_env_step", fields)]
    return [
        Job("mjx_physics", physics_steps(env, horizon, mesh, env.statics.default_ctrl), states.data,
            batch * horizon, fields=fields),
        Job("mjx_env_step", env_steps(env, horizon, mesh), states, batch * horizon, "mjx_physics", fields),
        Job("ppo_rollout", one_rollout, running, iteration_steps, "mjx_env_step", iteration_fields),
        Job("ppo_amp_iteration", trainer.iteration, state, iteration_steps, "ppo_rollout", iteration_fields),
        *learned,
    ]


def lines(config: ml_collections.ConfigDict, mesh: Mesh | None, options: dict[str, Any], repeats: int,
          cache_dir: str | None) -> Iterator[dict[str, Any]]:
    """The lines over `options["ppo_rollouts"]` rollouts, with `options["actuator_net"]`'s where given."""
    yield from measure(jobs(config, mesh, options["ppo_rollouts"], options["actuator_net"]), repeats=repeats,
                       cache_dir=cache_dir)
