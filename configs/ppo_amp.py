"""PPO + AMP on the 12-DOF biped at GPU scale (one H200).

    python -m experiments.ppo_amp --config=configs/ppo_amp.py [--config.num_envs=8192]

Every field can be overridden from the command line; the same command with the same
`--config.run_name` resumes the run.
"""

import ml_collections
from ml_collections import config_dict

from common.envs.biped.config import DEFAULT_REWARD_SCALES


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Parallel environments; the env axis is sharded over all devices.
    c.num_envs = 4096
    # Policy steps each env takes per iteration (50 Hz: 24 steps = 0.48 s).
    c.rollout_length = 24
    c.num_iterations = 3000
    # Also stop once this many env steps are done (after the iteration that crosses it,
    # which is evaluated); 0 means no limit. Schedules still run over num_iterations.
    c.max_env_steps = 0
    # Episode length in policy steps (20 s).
    c.horizon = 1000
    # Split the host CPU into this many XLA devices (0: JAX's default, one).
    c.cpu_devices = 0

    # Robot and physics (common.envs.make("biped_walk") overrides).
    c.env = "biped_walk"
    # None: the bundled biped (common/assets/biped.xml).
    c.xml_path = config_dict.placeholder(str)
    c.physics = "fast"  # explicit foot-floor contact pairs, the MJCF's integrator and solver
    c.impl = "jax"
    # None: the MJCF's own (Newton, 2 iterations, 4 line-search iterations).
    c.solver_iterations = config_dict.placeholder(int)
    c.ls_iterations = config_dict.placeholder(int)

    # Task settings passed to the env (names as in common/envs/biped/config.py).
    c.task = ml_collections.ConfigDict()
    # Joint target = default + action_scale x effort / stiffness x action. The actor's
    # actions are tanh-squashed to [-1, 1], so this bounds every target: at 0.3 the knee
    # reaches 0.21 rad past its default, while the bundled walking clips need 0.64 (hip
    # pitch 0.34 of 0.19, ankle 0.23 of 0.18). At 1.0 a full action is the effort limit.
    c.task.action_scale = 1.0
    c.task.command_vx = (-0.3, 0.8)
    c.task.command_vy = (-0.3, 0.3)
    c.task.command_yaw = (-0.8, 0.8)
    c.task.command_vx_start = (0.0, 0.3)
    c.task.command_vy_start = (0.0, 0.0)
    c.task.command_yaw_start = (0.0, 0.0)
    c.task.command_zero_prob = 0.1
    c.task.base_height_target = 0.46
    c.task.grace_steps = 10
    # The bundled walk swings a foot for ~0.2 s at 0.5 m/s (4.6 steps/s).
    c.task.feet_air_time_target = 0.15
    # Reward weights per second of simulated time (reward/<name> in the metrics).
    c.rewards = ml_collections.ConfigDict(dict(DEFAULT_REWARD_SCALES))

    # Domain randomisation, drawn per episode.
    c.randomize = ml_collections.ConfigDict()
    c.randomize.enabled = True
    c.randomize.friction_range = (0.4, 1.2)
    c.randomize.mass_scale_range = (0.9, 1.1)
    c.randomize.damping_scale_range = (0.7, 1.3)
    c.randomize.latency_steps = (0, 3)
    c.randomize.push_force_range = (5.0, 50.0)
    c.randomize.push_interval_steps = (150, 400)
    c.randomize.push_duration_steps = 5
    c.randomize.obs_noise_scale = 1.0

    # Command curriculum: the command ranges widen from *_start to the full ranges.
    c.curriculum = ml_collections.ConfigDict()
    c.curriculum.enabled = True
    c.curriculum.initial_level = 0.0
    # Raise the level when the mean linear-tracking term (exp kernel, 1 = perfect)
    # over an iteration's steps exceeds this.
    c.curriculum.threshold = 0.7
    c.curriculum.step = 0.05

    # PPO.
    c.ppo = ml_collections.ConfigDict()
    c.ppo.hidden = (512, 256, 128)
    c.ppo.init_log_std = -1.0
    c.ppo.learning_rate = 3e-4
    # Cosine decay to this fraction of the learning rate by the last iteration.
    c.ppo.lr_final_fraction = 0.1
    c.ppo.max_grad_norm = 1.0
    c.ppo.epochs = 5
    c.ppo.minibatches = 4
    c.ppo.gamma = 0.99
    c.ppo.lam = 0.95
    c.ppo.clip_eps = 0.2
    # 0: the value loss is not clipped.
    c.ppo.value_clip_eps = 0.2
    c.ppo.value_coef = 1.0
    c.ppo.entropy_coef = 0.005
    c.ppo.entropy_coef_final = 0.001
    c.ppo.entropy_decay_iterations = 2000
    c.ppo.normalize_advantages = True
    # Divide rewards by the running std of the discounted return.
    c.ppo.reward_scaling = True
    c.ppo.obs_clip = 5.0

    # Adversarial Motion Priors.
    c.amp = ml_collections.ConfigDict()
    c.amp.enabled = True
    # .npz clips or directories of them; empty: the built-in walking generator.
    c.amp.motion_files = ()
    c.amp.generator_speeds = (0.2, 0.35, 0.5, 0.65)
    # The generator also makes a standing clip and a stepping-in-place one.
    c.amp.generator_standing = True
    c.amp.generator_stepping_in_place = True
    # Frames per discriminator sample (the transition s_t -> s_t+1 is 2).
    c.amp.window = 2
    c.amp.hidden = (1024, 512, 256)
    c.amp.spectral_norm = False
    c.amp.loss = "least_squares"  # or "logistic"
    c.amp.gp_weight = 10.0
    # Discriminator input units: "reference" (mean/std of the clips) or "pooled" (an
    # equal mix of the clips and recent policy windows; see amp.pooled_input_stats).
    # With "reference" and no noise the discriminator separated the sets completely
    # within 25 iterations and the style reward fell to 0.02 (BENCHMARKS.md).
    c.amp.normalization = "pooled"
    # Std of the instance noise added to both sides of the discriminator's training
    # batches, in those units (0: none).
    c.amp.input_noise = 3.0
    c.amp.learning_rate = 5e-5
    c.amp.weight_decay = 1e-4
    c.amp.batch_size = 4096
    c.amp.steps_per_iteration = 4
    c.amp.replay_capacity = 200_000
    c.amp.replay_fraction = 0.5
    # Reward = task_weight x task reward + style_weight x style reward x dt.
    c.amp.task_weight = 1.0
    c.amp.style_weight = 1.0

    # Evaluation during training: deterministic policy, nominal physics, a fixed command.
    c.eval_every = 50
    c.eval_episodes = 16
    c.eval_seconds = 10.0
    c.eval_command = (0.5, 0.0, 0.0)

    c.checkpoint_every = 100
    c.checkpoints_to_keep = 3
    c.results_dir = "results"
    # Results go to results_dir/ppo_amp/run_name/; None names the run after the config's hash.
    c.run_name = config_dict.placeholder(str)
    c.compile_cache_dir = "jax_compile_cache"
    return c
