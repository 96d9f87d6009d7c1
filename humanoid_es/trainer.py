"""The ES iteration as one jitted function, and noise-free evaluation of theta.

`Trainer.iteration(state) -> (state, metrics)` evaluates 2 x pairs candidates in chunks
(sharded across the mesh), shapes their fitness, regenerates the noise to estimate the
gradient, steps the optimizer and merges the iteration's observation statistics into
the normaliser, which the rollouts use from the next iteration on. With an evosax
`config.strategy` the strategy asks for the population as an array, which enters the
same rollouts sharded by candidate, and is told the fitness; its state is part of
`TrainState` and theta is its mean. Everything that
changes lives in `TrainState`, including the PRNG key, so a restored state continues
exactly as the uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.flatten_util import ravel_pytree
from jax.sharding import Mesh
from jaxtyping import Array, Float, Int, PRNGKeyArray

from common import envs, normalizer, rollout, sharding, video
from common.config import ConfigError
from humanoid_es import config as es_config, es, policy, schedules, strategies


class TrainState(eqx.Module):
    """Everything an ES run carries from one iteration to the next."""

    theta: Float[Array, " params"]
    frozen: policy.Reservoir
    opt_state: optax.OptState
    obs_stats: normalizer.RunningStats
    iteration: Int[Array, ""]
    # Env steps lived so far, the clock of schedules set over env steps. float32: an int32
    # would overflow within ~130 production iterations of 16M steps; the schedules do not
    # need the last step's precision.
    env_steps: Float[Array, ""]
    key: PRNGKeyArray
    # The evosax strategy's state (None for the perturbative strategy).
    strategy_state: Any = None


def episode_metrics(out: rollout.Outcome) -> dict[str, Float[Array, ""]]:
    """The env's metrics per episode, averaged over the batch.

    Reward terms (`reward/<name>`) are episode sums, so they add up to the mean return;
    every other metric (the humanoid's `x_velocity`) is a per-step mean within each
    episode, named `<name>_mean`.
    """
    length = jnp.maximum(out.length, 1).astype(out.episode_return.dtype)
    metrics = {}
    for name, total in out.metric_sums.items():
        if name.startswith("reward/"):
            metrics[name] = jnp.mean(total)
        elif name != "diverged":
            metrics[f"{name}_mean"] = jnp.mean(total / length)
    return metrics


def full_episodes(out: rollout.Outcome, horizon: int) -> Int[Array, ""]:
    """Episodes that lived the whole horizon and stayed finite: a mean length hides one fall."""
    return jnp.sum((out.length >= horizon) & ~out.diverged)


def _play_act(params: tuple[policy.Reservoir, normalizer.RunningStats], h, obs):
    reservoir, stats = params
    return reservoir(stats, h, obs)


def _play_carry(params: tuple[policy.Reservoir, normalizer.RunningStats]):
    return params[0].initial_state()


class Trainer:
    """Static parts of an ES run (env, shapes, optimizer) and its jitted functions."""

    def __init__(self, config: ml_collections.ConfigDict, mesh: Mesh | None = None, **env_overrides):
        self.config = config
        self.mesh = mesh
        overrides = es_config.env_overrides(config) | env_overrides
        self.env = envs.make(config.env, **overrides)
        # Training's episodes; evaluations run the task's own `env`.
        self.train_env = self.env if config.train_reset_noise is None else envs.make(
            config.env, **(overrides | {"reset_noise_scale": config.train_reset_noise}))
        self.population = 2 * config.pairs
        self.block = config.early_exit_block or None
        self.policy_config = es_config.policy_config(config)
        if self.policy_config.obs_features > self.env.observation_size:
            raise ConfigError(
                f"config.policy.obs_features: must be <= the observation size "
                f"{self.env.observation_size}, got {self.policy_config.obs_features}"
            )
        self.trainable = tuple(config.policy.trainable)
        # Over env steps where `schedule_env_steps` says so: steps per iteration grow
        # tenfold as episodes lengthen, so a schedule over iterations would end early.
        steps = config.schedule_env_steps or config.num_iterations
        self.sigma_schedule = schedules.make(config.sigma_schedule, config.sigma, config.sigma_final, steps)
        self.lr_schedule = schedules.make(
            config.learning_rate_schedule, config.learning_rate, config.learning_rate_final, steps
        )
        # Held at fall_height until rise_from, then linear to the task's height by rise_to.
        self.fall_height_schedule = None if config.fall_height is None else (
            optax.constant_schedule(config.fall_height) if config.fall_height_rise_to == 0 else
            optax.linear_schedule(config.fall_height, self.env.config.healthy_z_min,
                                  max(config.fall_height_rise_to - config.fall_height_rise_from, 1),
                                  transition_begin=config.fall_height_rise_from))
        # The torso's assist falls linearly from `assist` to 0 by env step assist_env_steps.
        self.assist_schedule = None if not config.assist else optax.linear_schedule(
            config.assist, 0.0, config.assist_env_steps)
        make_opt = {"adam": optax.adam, "sgd": optax.sgd}[config.optimizer]
        # The perturbative ES scales the optimizer's unit-rate update by the schedule at its
        # own clock (Adam's and SGD's updates are linear in the rate); evosax strategies
        # count iterations inside their optimizer.
        self.optimizer = make_opt(1.0 if config.strategy == strategies.PERTURBATIVE else self.lr_schedule)
        # The trainable leaves' shapes are fixed by the config; a zero template gives the
        # unravel function without drawing a reservoir.
        template = policy.zeros(self.policy_config, self.env.observation_size, self.env.action_size)
        trainable, _ = eqx.partition(template, policy.trainable_filter(template, self.trainable))
        flat, self._unravel = ravel_pytree(trainable)
        self.num_params = flat.shape[0]
        self.strategy = None
        if config.strategy != strategies.PERTURBATIVE:
            self.strategy = strategies.make(config.strategy, self.population, self.num_params, self.optimizer,
                                            config.sigma, self.sigma_schedule)
        # With a mesh the train state lives replicated on every device, going in and
        # coming out, so the executables compiled ahead of time for the first state
        # accept every later one (an AOT executable refuses other input shardings).
        sharded = {} if mesh is None else {"out_shardings": sharding.named(mesh, sharding.REPLICATED)}
        self.iteration = jax.jit(self._iteration, **sharded)
        self.evaluate = jax.jit(self._evaluate, static_argnames="episodes", **sharded)

    # --- state ----------------------------------------------------------------------

    def init(self, key: PRNGKeyArray) -> TrainState:
        key_policy, key_run = jax.random.split(key)
        reservoir_seed = self.config.policy.reservoir_seed
        if reservoir_seed is not None:
            # The reservoir a run with seed = reservoir_seed draws; the rest is this run's.
            key_policy = jax.random.split(jax.random.PRNGKey(reservoir_seed))[0]
        ctrl_range = self.env.config.load_mj_model().actuator_ctrlrange
        pol = policy.init(key_policy, self.policy_config, self.env.observation_size, ctrl_range)
        trainable, frozen = eqx.partition(pol, policy.trainable_filter(pol, self.trainable))
        theta, _ = ravel_pytree(trainable)
        strategy_state = None
        if self.strategy is not None:
            key_strategy, key_run = jax.random.split(key_run)
            strategy_state = self.strategy.init(key_strategy, theta)
        return TrainState(
            theta=theta,
            frozen=frozen,
            # An evosax strategy keeps its own optimizer state in strategy_state.
            opt_state=self.optimizer.init(theta) if self.strategy is None else (),
            obs_stats=normalizer.init(self.env.observation_size),
            iteration=jnp.zeros((), jnp.int32),
            env_steps=jnp.zeros((), jnp.float32),
            key=key_run,
            strategy_state=strategy_state,
        )

    def place(self, state: TrainState) -> TrainState:
        """`state` replicated over the mesh (as every iteration returns it); as is without one."""
        return sharding.place(state, self.mesh, sharding.REPLICATED)

    def branch(self, state: TrainState, source: TrainState) -> TrainState:
        """`state` (fresh: iteration 0, its own key) carrying `source`'s policy, normaliser,
        schedule clock and, where its structure and shapes match, optimizer state."""
        def shapes(tree):
            return jax.tree.structure(tree), [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]

        for name in ("theta", "frozen", "obs_stats"):
            if shapes(getattr(state, name)) != shapes(getattr(source, name)):
                raise ConfigError(f"config.init_from: the source run's {name} has another shape than this "
                                  "config's")
        opt_state = source.opt_state if shapes(source.opt_state) == shapes(state.opt_state) else state.opt_state
        return dataclasses.replace(state, theta=source.theta, frozen=source.frozen, obs_stats=source.obs_stats,
                                   opt_state=opt_state, env_steps=source.env_steps)

    def policy(self, state: TrainState, theta: Float[Array, " params"] | None = None) -> policy.Reservoir:
        """The policy with `theta` (default: the state's) in its trainable leaves."""
        return eqx.combine(self._unravel(state.theta if theta is None else theta), state.frozen)

    # --- rollouts -------------------------------------------------------------------

    def _act_fns(self, state: TrainState):
        def act(theta, h, obs):
            return self.policy(state, theta)(state.obs_stats, h, obs)

        def init_carry(theta):
            return jnp.zeros((self.policy_config.size,), theta.dtype)

        return act, init_carry

    def _noise(self, key: PRNGKeyArray) -> Float[Array, " params"]:
        eps = es.sample(key, self._unravel(jnp.zeros((self.num_params,))), self.config.noise_rank)
        return ravel_pytree(eps)[0]

    def fall_height(self, state: TrainState) -> Float[Array, ""] | None:
        """The torso height that ends a training episode now (None: the task's)."""
        if self.fall_height_schedule is None:
            return None
        return jnp.asarray(self.fall_height_schedule(state.env_steps), jnp.float32)

    def assist(self, state: TrainState) -> Float[Array, ""] | None:
        """How hard the torso is held in training now (None: no assist in this run)."""
        if self.assist_schedule is None:
            return None
        return jnp.asarray(self.assist_schedule(state.env_steps), jnp.float32)

    def _population(self, state: TrainState, candidate, shared, key: PRNGKeyArray, candidates=None) -> rollout.Outcome:
        act, init_carry = self._act_fns(state)
        c = self.config
        height = self.fall_height(state)
        env = self.train_env if height is None else self.train_env.with_fall_height(height)
        strength = self.assist(state)
        if strength is not None:
            # Held episodes end at assist_horizon; once the hand lets go, where the task's do.
            env = env.with_assist(strength, jnp.where(strength > 0, c.assist_horizon, self.env.config.episode_length))
        return rollout.evaluate_population(
            env, act, init_carry, candidate, shared, key,
            population=self.population, chunk=c.candidate_chunk, horizon=c.horizon,
            block=self.block, mesh=self.mesh, queue=c.rollout_queue, candidates=candidates,
        )

    def clock(self, state: TrainState) -> Float[Array, ""]:
        """Where the schedules stand: env steps or iterations done."""
        return state.env_steps if self.config.schedule_env_steps else state.iteration.astype(jnp.float32)

    def _perturbative_step(self, state: TrainState, key_pop: PRNGKeyArray, sigma: Float[Array, ""]):
        """Antithetic candidates 2i, 2i+1 = theta +- sigma eps_i, noise regenerated from keys."""
        c = self.config
        key_noise, key_env = jax.random.split(key_pop)

        def candidate(shared, index, _):
            theta, sigma = shared
            pair = index // 2
            sign = jnp.where(index % 2 == 0, 1.0, -1.0).astype(theta.dtype)
            eps = self._noise(es.pair_key(key_noise, pair))
            # Both members of a pair meet the same episode (common random numbers).
            return theta + sign * sigma * eps, jax.random.fold_in(key_env, pair)

        out = self._population(state, candidate, (state.theta, sigma), key_pop)
        fitness = self._fitness(out)
        weights, n_kept = es.pair_weights(fitness[0::2], fitness[1::2], c.fitness_shaping, c.top_k)
        grad_tree = es.gradient(
            key_noise, weights, n_kept, sigma, self._unravel(state.theta),
            rank=c.noise_rank, chunk=max(c.candidate_chunk // 2, 1),
        )
        grad = ravel_pytree(grad_tree)[0] - c.weight_decay * state.theta
        # optax minimises: hand it the negated ascent direction.
        updates, opt_state = self.optimizer.update(-grad, state.opt_state, state.theta)
        lr = jnp.asarray(self.lr_schedule(self.clock(state)), state.theta.dtype)
        theta = state.theta + lr * updates
        new = dataclasses.replace(state, theta=theta, opt_state=opt_state)
        return new, out, fitness, {"grad_norm": jnp.linalg.norm(grad), "pairs_kept": n_kept, "sigma": sigma}

    def _evosax_step(self, state: TrainState, key_pop: PRNGKeyArray):
        """The strategy's asked population, evaluated by candidate and told its fitness."""
        strategy = self.strategy
        key_ask, key_tell, key_env = jax.random.split(key_pop, 3)
        population, strategy_state = strategy.ask(key_ask, state.strategy_state)
        # Sampled where it is evaluated: each device holds only its candidates' rows.
        population = sharding.constrain(population, self.mesh, sharding.SPLIT)
        half = self.population // 2

        def candidate(_, item, __):
            index, row = item
            # Mirrored candidates i and i + population / 2 meet the same episode.
            episode = index % half if strategy.antithetic else index
            return row, jax.random.fold_in(key_env, episode)

        indices = jnp.arange(self.population, dtype=jnp.int32)
        out = self._population(state, candidate, None, key_pop, candidates=(indices, population))
        fitness = self._fitness(out)
        strategy_state = strategy.tell(key_tell, population, fitness, strategy_state)
        new = dataclasses.replace(state, theta=strategy_state.mean, strategy_state=strategy_state)
        sigma = jnp.mean(jnp.asarray(strategy_state.std, state.theta.dtype))
        return new, out, fitness, {"sigma": sigma}

    def _fitness(self, out: rollout.Outcome) -> Float[Array, " population"]:
        c = self.config
        # Read only where charged: the toy envs of the tests report no posture.
        tilt = out.metric_sums["torso_tilt"] if c.tilt_cost else jnp.zeros_like(out.episode_return)
        return es.training_fitness(out.episode_return, out.length, tilt, c.reward_shift, c.tilt_cost)

    def _iteration(self, state: TrainState) -> tuple[TrainState, dict[str, Array]]:
        key, key_pop = jax.random.split(state.key)
        if self.strategy is None:
            sigma = jnp.asarray(self.sigma_schedule(self.clock(state)), state.theta.dtype)
            new, out, fitness, extra = self._perturbative_step(state, key_pop, sigma)
        else:
            new, out, fitness, extra = self._evosax_step(state, key_pop)
        metrics = {
            "fitness_mean": jnp.mean(fitness),
            "fitness_std": jnp.std(fitness),
            "fitness_max": jnp.max(fitness),
            "fitness_min": jnp.min(fitness),
            "return_mean": jnp.mean(out.episode_return),
            "return_max": jnp.max(out.episode_return),
            "episode_length_mean": jnp.mean(out.length.astype(jnp.float32)),
            # The longest episode: without the work queue a chunk steps until its longest ends.
            "episode_length_max": jnp.max(out.length),
            "iteration_env_steps": jnp.sum(out.length),
            "update_norm": jnp.linalg.norm(new.theta - state.theta),
            "theta_norm": jnp.linalg.norm(new.theta),
            "learning_rate": jnp.asarray(self.lr_schedule(self.clock(state))),
            "nonfinite_guard": jnp.sum(out.diverged.astype(jnp.int32)),
            **({} if self.config.fall_height is None else {"fall_height": self.fall_height(state)}),
            **({} if self.assist_schedule is None else {"assist": self.assist(state)}),
            **extra,
            **episode_metrics(out),
        }
        new = dataclasses.replace(new, obs_stats=normalizer.merge(state.obs_stats, out.obs_stats),
                                  iteration=state.iteration + 1,
                                  env_steps=state.env_steps + jnp.sum(out.length).astype(jnp.float32), key=key)
        return new, metrics

    def _evaluate(self, state: TrainState, key: PRNGKeyArray, episodes: int | None = None) -> dict[str, Array]:
        """Noise-free theta on `eval_episodes` fresh episodes."""
        n = episodes or self.config.eval_episodes
        act, init_carry = self._act_fns(state)
        thetas = jnp.broadcast_to(state.theta, (n, self.num_params))
        out = rollout.rollout(self.env, act, init_carry, thetas, jax.random.split(key, n),
                              self.config.horizon, self.block)
        return {
            "eval_return": jnp.mean(out.episode_return),
            "eval_return_std": jnp.std(out.episode_return),
            "eval_return_min": jnp.min(out.episode_return),
            "eval_length": jnp.mean(out.length.astype(jnp.float32)),
            "eval_full_episodes": full_episodes(out, self.config.horizon),
            "eval_nonfinite_guard": jnp.sum(out.diverged.astype(jnp.int32)),
            **{f"eval_{k}": v for k, v in episode_metrics(out).items()},
        }

    def playback(self, state: TrainState, seconds: float) -> video.Playback:
        """`seconds` of the noise-free policy of `state` with its normaliser, for clips and export."""
        mj_model = self.env.config.load_mj_model()
        dt = float(mj_model.opt.timestep) * self.env.config.frame_skip
        return video.Playback(env=self.env, act=_play_act, init_carry=_play_carry,
                              params=(self.policy(state), state.obs_stats), mj_model=mj_model, control_dt=dt,
                              steps=video.clip_steps(seconds, dt))

    def eval_key(self, state: TrainState) -> PRNGKeyArray:
        """Evaluation episodes drawn apart from training ones, fixed per iteration."""
        return jax.random.fold_in(jax.random.PRNGKey(self.config.seed + 1_000_003), state.iteration)
