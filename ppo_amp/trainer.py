"""The PPO+AMP trainer: one jitted iteration `(train_state) -> (train_state, metrics)`.

An iteration collects `rollout_length` steps from every env (auto-resetting finished
episodes), updates the observation statistics, trains the discriminator on reference
windows against the rollout's (and replayed) policy windows, adds the style reward to
the task reward, scales rewards, computes GAE advantages and runs the PPO epochs. The
command curriculum widens the command ranges when tracking is good. With a mesh, the env
axis of everything per-env is sharded across devices; the networks are replicated.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.sharding import Mesh
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from common import envs, normalizer, rollout, sharding, video
from common.envs.base import State
from ppo_amp import amp, amp_features, evaluate as evaluation, motion, motion_gen, networks, ppo, replay as replay_lib
from ppo_amp import config as ppo_config


class TrainState(eqx.Module):
    """Everything an iteration reads and writes; saved whole for exact resumption."""

    actor: networks.Actor
    critic: networks.Critic
    opt_state: optax.OptState
    disc: amp.Discriminator | None
    disc_opt_state: optax.OptState | None
    replay: replay_lib.ReplayBuffer | None
    obs_stats: normalizer.RunningStats
    critic_obs_stats: normalizer.RunningStats
    reward_scaling: ppo.RewardScaling
    env_state: State
    # The last window-1 AMP frames of each env's episode, oldest first.
    amp_history: Float[Array, "N k1 F"]
    episode_return: Float[Array, " N"]
    episode_length: Int[Array, " N"]
    command_level: Float[Array, ""]
    iteration: Int[Array, ""]
    key: PRNGKeyArray


class Acted(eqx.Module):
    """What the policy returns beside each step's action (the rollout's `Step.aux`)."""

    raw_action: Float[Array, "N act"]
    log_prob: Float[Array, " N"]
    value: Float[Array, " N"]


class Recorded(eqx.Module):
    """What the rollout records after each step (its `Step.out`)."""

    critic_obs: Float[Array, "N cobs"]
    next_value: Float[Array, " N"]
    terminated: Bool[Array, " N"]
    amp_window: Float[Array, "N D"]


def reference_clips(config: ml_collections.ConfigDict) -> list[motion.MotionClip]:
    """The AMP reference: the configured .npz clips, or generated walks at the control rate."""
    fps = 1.0 / envs.make(ppo_config.ENV, **ppo_config.env_overrides(config)).dt
    if config.amp.motion_files:
        return motion.load_clips(list(config.amp.motion_files), fps)
    return motion_gen.generate_walking_clips(
        tuple(config.amp.generator_speeds), fps=fps, standing=config.amp.generator_standing,
        stepping_in_place=config.amp.generator_stepping_in_place)


class Trainer:
    """Builds the env, networks and jitted functions for one config."""

    def __init__(self, config: ml_collections.ConfigDict, mesh: Mesh | None = None, **env_overrides):
        self.config = config
        self.mesh = mesh
        self.env = envs.make(ppo_config.ENV, **(ppo_config.env_overrides(config) | env_overrides))
        c = config.ppo
        self.num_envs = config.num_envs
        updates = config.num_iterations * c.epochs * c.minibatches
        self.lr_schedule = ppo.cosine_schedule(c.learning_rate, updates, final_fraction=c.lr_final_fraction)
        self.optimizer = ppo.make_optimizer(self.lr_schedule, c.max_grad_norm or None)
        self.amp_enabled = bool(config.amp.enabled)
        self.window = int(config.amp.window)
        if self.amp_enabled:
            clips = reference_clips(config)
            self.reference = jnp.asarray(amp_features.reference_windows(clips, self.window), jnp.float32)
            self.reference_stats = normalizer.from_batch(self.reference)
            self.disc_optimizer = amp.make_optimizer(config.amp.learning_rate, config.amp.weight_decay)
        self.eval_steps = max(1, round(config.eval_seconds / self.env.dt))
        self.eval_env = self.make_eval_env(tuple(config.eval_command), self.eval_steps, **env_overrides)
        # The state lives where `state_specs` says, going in and coming out, so the
        # executables compiled ahead of time for the first state accept every later one.
        self.iteration = eqx.filter_jit(self._iteration)
        self.evaluate = eqx.filter_jit(self._evaluate)
        weights = dict(self.env.config.reward_scales)
        # The curriculum reads the raw tracking kernel (1 = perfect) back from its weighted log.
        self.tracking_weight = weights.get("tracking_lin_vel", 0.0) * self.env.dt

    def make_eval_env(self, command: tuple[float, float, float], steps: int, **env_overrides):
        """The task at a fixed command for `steps` steps, under nominal physics (no
        randomisation, pushes or noise) unless `env_overrides` turn `randomize` on."""
        overrides = ppo_config.env_overrides(self.config) | {"randomize": False} | env_overrides
        overrides.update(fixed_command=tuple(float(v) for v in command), episode_length=steps)
        return envs.make(ppo_config.ENV, **overrides)

    # -- sharding -----------------------------------------------------------------

    def state_specs(self, state: TrainState):
        """How each array of `state` lies on the mesh: per-env leaves split, the rest replicated."""
        arrays = eqx.filter(state, eqx.is_array)
        specs = jax.tree.map(lambda _: sharding.REPLICATED, arrays)
        env_leaves = lambda s: (s.env_state, s.amp_history, s.episode_return, s.episode_length,
                                s.reward_scaling.discounted_return)
        # Empty arrays (MJX fields this model does not use) stay replicated: XLA places
        # them so whatever it is told, and the specs must agree with where they end up.
        split = jax.tree.map(lambda x: sharding.SPLIT if x.size else sharding.REPLICATED, env_leaves(arrays))
        return eqx.tree_at(env_leaves, specs, replace=split)

    def place(self, state: TrainState) -> TrainState:
        """Puts a host-side state on the mesh (a no-op without one)."""
        return sharding.place(state, self.mesh, self.state_specs(state))

    # -- state --------------------------------------------------------------------

    def _frames(self, s: State, contact: Array | None = None) -> Float[Array, "N F"]:
        foot = s.info["foot_contact"] if contact is None else contact
        return jax.vmap(amp_features.frame_features_from_state)(s.data.qpos, s.data.qvel, foot.astype(jnp.float32))

    def init(self, key: PRNGKeyArray) -> TrainState:
        """A fresh train state: networks drawn from `key`, every env reset."""
        c = self.config
        k_net, k_disc, k_env, k_state = jax.random.split(key, 4)
        actor, critic = networks.init(k_net, self.env.observation_size, self.env.critic_observation_size,
                                      self.env.action_size, tuple(c.ppo.hidden), c.ppo.init_log_std)
        level = jnp.asarray(c.curriculum.initial_level if c.curriculum.enabled else 1.0, jnp.float32)
        env_state = jax.vmap(lambda k: self.env.reset(k, level))(jax.random.split(k_env, self.num_envs))
        frames = self._frames(env_state)
        history = jnp.repeat(frames[:, None], self.window - 1, axis=1)
        disc = disc_opt = replay = None
        if self.amp_enabled:
            mean, std = amp.input_stats(self.reference)
            disc = amp.init(k_disc, self.reference.shape[1], tuple(c.amp.hidden), c.amp.spectral_norm, mean, std)
            disc_opt = self.disc_optimizer.init(amp.trainable(disc))
            replay = replay_lib.init(c.amp.replay_capacity, self.reference.shape[1])
        return TrainState(
            actor=actor, critic=critic, opt_state=ppo.init_opt_state(self.optimizer, actor, critic),
            disc=disc, disc_opt_state=disc_opt, replay=replay,
            obs_stats=normalizer.init(self.env.observation_size),
            critic_obs_stats=normalizer.init(self.env.critic_observation_size),
            reward_scaling=ppo.reward_scaling_init(self.num_envs),
            env_state=env_state, amp_history=history,
            episode_return=jnp.zeros((self.num_envs,)), episode_length=jnp.zeros((self.num_envs,), jnp.int32),
            command_level=level, iteration=jnp.zeros((), jnp.int32), key=k_state,
        )

    # -- rollout ------------------------------------------------------------------

    def _normalize(self, stats: normalizer.RunningStats, x: Array) -> Array:
        return normalizer.normalize(stats, x, clip=self.config.ppo.obs_clip)

    def _rollout(self, state: TrainState, key: PRNGKeyArray) -> tuple[rollout.Running, rollout.Step]:
        n, t = self.num_envs, self.config.rollout_length
        # Per-env keys drawn for the whole batch, so a device's envs see the same keys
        # whatever the number of devices.
        k_act, k_reset = jax.random.split(key)
        per_env = lambda k: jax.vmap(lambda kk: jax.random.split(kk, n))(jax.random.split(k, t))
        act_keys, reset_keys = per_env(k_act), per_env(k_reset)
        nets = (state.actor, state.critic, state.obs_stats, state.critic_obs_stats, state.command_level)
        running = rollout.Running(state=state.env_state, extra=state.amp_history,
                                   episode_return=state.episode_return, episode_length=state.episode_length)

        def local(nets, running, act_keys, reset_keys):
            actor, critic, obs_stats, critic_stats, level = nets

            def policy(s: State, keys: PRNGKeyArray):
                obs = self._normalize(obs_stats, s.obs)
                cobs = self._normalize(critic_stats, s.info["critic_obs"])
                action, log_prob, raw = jax.vmap(actor.sample)(keys, obs)
                return action, Acted(raw_action=raw, log_prob=log_prob, value=jax.vmap(critic)(cobs))

            def record(history, s: State, nxt: State, fresh: State, done):
                next_value = jax.vmap(critic)(self._normalize(critic_stats, nxt.info["critic_obs"]))
                frame = self._frames(nxt)
                window = jnp.concatenate([history, frame[:, None]], axis=1).reshape(frame.shape[0], -1)
                fresh_history = jnp.repeat(self._frames(fresh)[:, None], self.window - 1, axis=1)
                kept_history = jnp.concatenate([history[:, 1:], frame[:, None]], axis=1)
                history = jnp.where(done[:, None, None], fresh_history, kept_history)
                return history, Recorded(critic_obs=s.info["critic_obs"], next_value=next_value,
                                         terminated=nxt.info["terminated"], amp_window=window)

            return rollout.auto_reset(self.env.step, lambda k: self.env.reset(k, level), policy, record,
                                       running, act_keys, reset_keys)

        run = sharding.per_device(local, self.mesh,
                                  (sharding.REPLICATED, sharding.SPLIT, sharding.SPLIT_TIME, sharding.SPLIT_TIME),
                                  (sharding.SPLIT, sharding.SPLIT_TIME))
        return run(nets, running, act_keys, reset_keys)

    # -- iteration ----------------------------------------------------------------

    def _play_act(self, params: tuple[networks.Actor, normalizer.RunningStats], carry, obs):
        actor, stats = params
        return carry, actor.deterministic(self._normalize(stats, obs))

    def playback(self, state: TrainState, seconds: float,
                 command: tuple[float, float, float] | None = None) -> video.Playback:
        """`seconds` of the deterministic walker of `state` at a held `command` (default the
        run's `eval_command`) under nominal physics, for clips and export."""
        vx, vy, wz = command = tuple(self.config.eval_command) if command is None else command
        steps = video.clip_steps(seconds, self.env.dt)
        env = self.make_eval_env(command, steps)
        return video.Playback(env=env, act=self._play_act, init_carry=lambda _: (), params=(state.actor, state.obs_stats),
                              mj_model=env.config.load_mj_model(), control_dt=env.dt, steps=steps,
                              caption=f"command: vx {vx:+.2f} m/s, vy {vy:+.2f} m/s, yaw {wz:+.2f} rad/s")

    def eval_key(self, state: TrainState) -> PRNGKeyArray:
        """The evaluation episodes' key: the same every time, so evaluations compare policies."""
        return jax.random.PRNGKey(self.config.seed + 1)

    def _evaluate(self, state: TrainState, key: PRNGKeyArray, episodes: int | None = None,
                  env=None, steps: int | None = None) -> dict[str, Array]:
        episodes = episodes or self.config.eval_episodes
        keys = jax.random.split(key, episodes)
        local = lambda actor, stats, keys: evaluation.episode_sums(
            env or self.eval_env, actor, stats, keys, steps=steps or self.eval_steps, obs_clip=self.config.ppo.obs_clip)
        sums = sharding.per_device(local, self.mesh, (sharding.REPLICATED, sharding.REPLICATED, sharding.SPLIT),
                                   sharding.SPLIT)(state.actor, state.obs_stats, keys)
        return evaluation.summarize(sums)

    def _iteration(self, state: TrainState) -> tuple[TrainState, dict[str, Array]]:
        c = self.config
        key, k_roll, k_disc, k_replay, k_ppo = jax.random.split(state.key, 5)
        running, traj = self._rollout(state, k_roll)
        t, n = traj.reward.shape

        obs_stats = normalizer.merge(state.obs_stats, normalizer.from_batch(traj.obs.reshape(t * n, -1)))
        critic_stats = normalizer.merge(state.critic_obs_stats,
                                        normalizer.from_batch(traj.out.critic_obs.reshape(t * n, -1)))

        metrics: dict[str, Array] = {}
        reward = c.amp.task_weight * traj.reward if self.amp_enabled else traj.reward
        disc, disc_opt, replay = state.disc, state.disc_opt_state, state.replay
        if self.amp_enabled:
            windows = traj.out.amp_window.reshape(t * n, -1)
            if c.amp.normalization == "pooled":
                filled = jnp.arange(replay.data.shape[0]) < replay.size
                recent = normalizer.merge(normalizer.from_batch(replay.data, filled), normalizer.from_batch(windows))
                disc = amp.with_input_stats(disc, *amp.pooled_input_stats(self.reference_stats, recent))
            disc, disc_opt, disc_metrics = amp.update(
                k_disc, disc, disc_opt, self.disc_optimizer, self.reference, windows, replay,
                batch_size=c.amp.batch_size, num_steps=c.amp.steps_per_iteration, loss_type=c.amp.loss,
                gp_weight=c.amp.gp_weight, replay_fraction=c.amp.replay_fraction, input_noise=c.amp.input_noise,
            )
            replay = replay_lib.add(replay, windows)
            style = amp.style_reward(disc, windows, c.amp.loss).reshape(t, n)
            reward = reward + c.amp.style_weight * self.env.dt * style
            metrics.update(disc_metrics)
            metrics["style_reward"] = jnp.mean(style)
            metrics["style_reward_std"] = jnp.std(style)
            metrics["disc_accuracy_reference"] = disc_metrics["disc/accuracy_reference"]
            metrics["disc_accuracy_policy"] = disc_metrics["disc/accuracy_policy"]
            # On a batch with as many reference windows as policy ones: 0.5 = indistinguishable.
            metrics["disc_accuracy"] = 0.5 * (metrics["disc_accuracy_reference"] + metrics["disc_accuracy_policy"])

        reward_scaling = state.reward_scaling
        if c.ppo.reward_scaling:
            reward_scaling, reward = ppo.reward_scaling_update(reward_scaling, reward, traj.done, c.ppo.gamma)
        advantage, returns = ppo.gae(reward, traj.aux.value, traj.out.next_value,
                                     traj.out.terminated.astype(jnp.float32), traj.done.astype(jnp.float32),
                                     c.ppo.gamma, c.ppo.lam)
        batch = ppo.flatten_time(ppo.Batch(
            obs=self._normalize(state.obs_stats, traj.obs),
            critic_obs=self._normalize(state.critic_obs_stats, traj.out.critic_obs),
            raw_action=traj.aux.raw_action, log_prob=traj.aux.log_prob, value=traj.aux.value,
            advantage=advantage, returns=returns,
        ))
        entropy_coef = ppo.entropy_coef_schedule(state.iteration, c.ppo.entropy_coef, c.ppo.entropy_coef_final,
                                                 c.ppo.entropy_decay_iterations)
        actor, critic, opt_state, ppo_metrics = ppo.update_epochs(
            k_ppo, state.actor, state.critic, state.opt_state, self.optimizer, batch,
            epochs=c.ppo.epochs, minibatches=c.ppo.minibatches, clip_eps=c.ppo.clip_eps,
            value_clip_eps=c.ppo.value_clip_eps or None, value_coef=c.ppo.value_coef,
            entropy_coef=entropy_coef, normalize_advantages=c.ppo.normalize_advantages,
        )
        metrics.update(ppo_metrics)

        env_metrics = {k: jnp.mean(v) for k, v in traj.metrics.items()}
        level = state.command_level
        if c.curriculum.enabled and self.tracking_weight > 0:
            tracking = env_metrics["reward/tracking_lin_vel"] / self.tracking_weight
            level = jnp.where(tracking > c.curriculum.threshold,
                              jnp.minimum(level + c.curriculum.step, 1.0), level)
            metrics["tracking_kernel"] = tracking
        finished = jnp.sum(traj.done)
        metrics.update(env_metrics)
        metrics.update(
            episode_return=jnp.sum(traj.finished_return) / jnp.maximum(finished, 1),
            episode_length=jnp.sum(traj.finished_length) / jnp.maximum(finished, 1),
            episodes_finished=finished.astype(jnp.float32),
            falls=jnp.sum(traj.out.terminated).astype(jnp.float32),
            tracking_error=env_metrics["tracking_error"],
            task_reward=jnp.mean(traj.reward),
            command_level=level,
            entropy_coef=entropy_coef,
            learning_rate=self.lr_schedule(state.iteration * c.ppo.epochs * c.ppo.minibatches),
            action_std=jnp.mean(jnp.exp(jnp.clip(actor.log_std, networks.LOG_STD_MIN, networks.LOG_STD_MAX))),
            iteration_env_steps=jnp.asarray(t * n, jnp.float32),
        )
        new_state = TrainState(
            actor=actor, critic=critic, opt_state=opt_state, disc=disc, disc_opt_state=disc_opt, replay=replay,
            obs_stats=obs_stats, critic_obs_stats=critic_stats, reward_scaling=reward_scaling,
            env_state=running.state, amp_history=running.extra, episode_return=running.episode_return,
            episode_length=running.episode_length,
            command_level=level, iteration=state.iteration + 1, key=key,
        )
        return sharding.constrain(new_state, self.mesh, self.state_specs(new_state)), metrics
