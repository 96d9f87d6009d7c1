"""Every field of a PPO+AMP run, each at its default: the production settings.

Runs complete an older config.json from `fields()` (resumes and the tools); the configs in
`configs/ppo_amp*.py` start from it and set the values they choose.
"""

import ml_collections
from ml_collections import config_dict

from common import config as config_lib
from common.envs.biped.config import DEFAULT_REWARD_SCALES, RANDOMIZE_FIELDS, BipedWalkConfig
from ppo_amp.config import RANDOMIZE_RENAME, TASK_EXCLUDE


def fields() -> ml_collections.ConfigDict:
    """Every PPO+AMP field at its default, the production settings (see the module)."""
    # Seed, step budget, CPU devices, results, checkpoints kept, video, TensorBoard,
    # compile cache: the fields every run has (common/config.py, run_fields).
    c = config_lib.run_fields()
    # Parallel environments; the env axis is sharded over all devices.
    c.num_envs = 4096
    # Policy steps each env takes per iteration (50 Hz: 24 steps = 0.48 s).
    c.rollout_length = 24
    c.num_iterations = 3000

    # Robot and physics (common.envs.make("biped_walk") overrides). Every task default is
    # BipedWalkConfig's (common/envs/biped/config.py); a section holds all its fields, so
    # config.json records each resolved value.
    c.env = "biped_walk"
    # None: the bundled biped (common/assets/biped.xml).
    c.xml_path = config_dict.placeholder(str)
    # physics "fast": explicit foot-floor contact pairs, the MJCF's integrator and solver;
    # solver_iterations / ls_iterations None keep the MJCF's (Newton, 2 and 4).
    c.update(config_lib.dataclass_fields(BipedWalkConfig, only=config_lib.TOP_LEVEL_ENV_FIELDS))
    # Episode length in policy steps (50 Hz).
    c.horizon = BipedWalkConfig.episode_length

    # Task settings passed to the env (names as in BipedWalkConfig).
    c.task = config_lib.dataclass_fields(BipedWalkConfig, exclude=TASK_EXCLUDE)
    # Reward weights per second of simulated time (reward/<name> in the metrics).
    c.rewards = ml_collections.ConfigDict(dict(DEFAULT_REWARD_SCALES))
    # Domain randomisation, drawn per episode; `enabled` is BipedWalkConfig's `randomize`.
    c.randomize = config_lib.dataclass_fields(BipedWalkConfig, only=RANDOMIZE_FIELDS, rename=RANDOMIZE_RENAME)

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
    return c
