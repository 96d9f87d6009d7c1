"""Every field of an ES run, each at the value that keeps a run from before the field existed as it ran.

Runs complete an older config.json from `fields()` (resumes and the tools); the configs in
`configs/es*.py` start from it and set the values they choose.
"""

import ml_collections
from ml_collections import config_dict

from common import config as config_lib
from common.envs.humanoid import HumanoidConfig
from humanoid_es.config import TASK_EXCLUDE
from humanoid_es.policy import ReservoirConfig


def fields() -> ml_collections.ConfigDict:
    """Every ES field, each at the value a run from before the field kept (see the module)."""
    # Seed, step budget, CPU devices, results, checkpoints kept, video, TensorBoard,
    # compile cache: the fields every run has (common/config.py, run_fields).
    c = config_lib.run_fields()
    # Task registered in common.envs.
    c.env = "humanoid"
    # Antithetic pairs per iteration; the population is 2 * pairs candidates.
    c.pairs = 8192
    # Candidates evaluated at once (memory is O(candidate_chunk)); divides 2 * pairs.
    c.candidate_chunk = 2048
    # Steps per episode: the humanoid's time limit.
    c.horizon = HumanoidConfig.episode_length
    # If > 0, stop stepping a chunk once every member is done, checking every
    # `early_exit_block` steps (must divide horizon). 0 runs the full scan.
    c.early_exit_block = 50
    # Run each device's candidates as a work queue on candidate_chunk / devices slots:
    # a slot whose episode ended takes the next candidate at the next block boundary,
    # instead of every chunk waiting for its longest-lived member. Needs early exit.
    c.rollout_queue = False
    # ES iterations to run in total (a resumed run continues up to this number).
    c.num_iterations = 1000
    # Humanoid MJCF; None uses the one bundled in common/assets.
    c.xml_path = config_dict.placeholder(str)
    # Physics, at HumanoidConfig's defaults (common/envs/humanoid.py): `physics` "fast"
    # (training) or "gym" (Gymnasium's settings, for parity); `impl` "jax" anywhere,
    # "warp" on NVIDIA GPUs; solver and line-search iterations, integrator ("euler",
    # "rk4", "implicitfast") and contacts ("pairs": feet x floor and the legs against
    # each other, "feet": feet x floor only, "floor": every body x floor and the legs,
    # "self": feet x floor and every pair of body parts the MJCF lets collide, "all":
    # the MJCF's), where None keeps the profile's; `max_contact_points` caps MJX's
    # contacts of each dimension at the deepest ones (None: all).
    c.update(config_lib.dataclass_fields(HumanoidConfig, only=config_lib.TOP_LEVEL_ENV_FIELDS))
    # The task itself (reward weights, termination, frame skip, contact geoms), every
    # field at HumanoidConfig's default, so config.json records each resolved value.
    c.task = config_lib.dataclass_fields(HumanoidConfig, exclude=TASK_EXCLUDE)
    # Evaluate the mean policy every `eval_every` iterations on `eval_episodes` episodes.
    c.eval_every = 10
    c.eval_episodes = 16

    # Reservoir policy: ReservoirConfig's fields at its defaults (humanoid_es/policy.py
    # says what each does).
    c.policy = config_lib.dataclass_fields(ReservoirConfig)

    # "perturbative" (this trainer's antithetic ES, noise regenerated from keys) or an
    # evosax 0.3.2 algorithm: "Open_ES", "ARS", "PGPE", "SNES", "Sep_CMA_ES" (asks for the
    # population as a [2 * pairs, params] array; sigma is its initial scale, and
    # fitness_shaping, top_k, noise_rank and weight_decay are the perturbative ES's own).
    c.strategy = "perturbative"
    # Perturbation scale: starts at sigma, follows sigma_schedule to sigma_final.
    c.sigma = 0.02
    c.sigma_final = 0.02
    # "constant", "linear", "cosine" or "exponential" over num_iterations, or over
    # schedule_env_steps env steps where that is > 0 (then held at the final value).
    c.sigma_schedule = "constant"
    # Optimizer on the ES gradient estimate: "adam" or "sgd".
    c.optimizer = "adam"
    c.learning_rate = 0.01
    c.learning_rate_final = 0.01
    c.learning_rate_schedule = "constant"
    # If > 0, sigma and the learning rate follow their schedules over this many env steps
    # rather than over num_iterations (an iteration's env steps grow tenfold as episodes
    # lengthen). The perturbative strategy only.
    c.schedule_env_steps = 0
    # L2 pull on theta, subtracted from the ascent direction.
    c.weight_decay = 0.005
    # "centered_rank" (OpenAI ES), "ars" (differences / return std) or "none".
    c.fitness_shaping = "centered_rank"
    # Keep only the top_k pairs by max(f+, f-) (ARS-t); 0 keeps every pair.
    c.top_k = 0
    # Training fitness = return - reward_shift x episode length (ARS removes the
    # survival bonus, 5 for the humanoid); evaluation returns are never shifted.
    c.reward_shift = 0.0
    # Training fitness also loses tilt_cost x the episode's summed torso tilt (1 - the
    # torso up axis' z: 0 upright, 1 lying); evaluations never do. With reward_shift 4
    # and tilt_cost 1, the survival bonus training keeps is 1 - tilt per step.
    c.tilt_cost = 0.0
    # Training episodes end where the torso sinks below fall_height (None: the task's
    # healthy_z_min, 1.0 m) until env step fall_height_rise_from of the run's clock, then
    # the height rises linearly to the task's by fall_height_rise_to (0 and 0: held
    # throughout). Evaluations always end where Humanoid-v4 does. Measured at 0.8 m on
    # seed 1: the lunge falls through it, no longer in training than in evaluation
    # (BENCHMARKS.md, "A lower training fall height").
    c.fall_height = config_dict.placeholder(float)
    c.fall_height_rise_from = 0
    c.fall_height_rise_to = 0
    # Training episodes start with every joint position and velocity offset uniformly in
    # +-train_reset_noise (None: task.reset_noise_scale, Humanoid-v4's 0.01), so that an
    # open-loop leap meets varied starts; evaluations always start as Humanoid-v4's do.
    # At 0.1 on seed 1 it learned neither lunge nor balance by 3M env steps (BENCHMARKS.md,
    # "Wider training starts").
    c.train_reset_noise = config_dict.placeholder(float)
    # A training-only hand on the torso (`common.envs.humanoid.Assist`): a spring-damper
    # toward the start height and upright, at `assist` (1: a 0.1 m sag lifts the body's
    # weight) falling linearly to 0 by env step assist_env_steps of the run's clock; while
    # it acts, training episodes end after assist_horizon steps. 0: no assist; at most 1.
    # Measured at 0.6 falling to 0 by 4M on seed 1: little learned while held, then the
    # lunge within 0.5M env steps of the hand's last pull (BENCHMARKS.md, "A hand on the
    # torso that lets go").
    c.assist = 0.0
    c.assist_env_steps = 0
    c.assist_horizon = 200
    # Rank of the noise on matrix leaves; 0 is full rank.
    c.noise_rank = 0

    # Start a fresh run from another ES run's latest checkpoint (its directory), or from one
    # it kept (`<run dir>@<iteration>`, see `checkpoints_keep_every`): its theta,
    # frozen reservoir (the policy settings must match), normaliser, schedule clock and,
    # where this config's optimizer keeps the same state, its optimizer state; the env
    # steps count on from the source's. Read once, when the run starts: a branched run
    # resumes without it. None starts from the seed's draw.
    c.init_from = config_dict.placeholder(str)

    # Independent starts (seeds seed x starts + k) run one after another to
    # `start_env_steps` each; the one whose evaluation episodes last longest continues to
    # `max_env_steps`, counting every start's env steps (`humanoid_es.starts`). 1: one run.
    c.starts = 1
    c.start_env_steps = 0

    # Orbax checkpoint every checkpoint_every iterations (and at exit).
    c.checkpoint_every = 10
    return c
