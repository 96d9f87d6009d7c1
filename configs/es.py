"""Production ES config: 8192 antithetic pairs (16,384 candidates) in chunks of 2048.

Override any field on the command line, e.g. `--config.pairs=1024 --config.seed=3`.
"""

import ml_collections
from ml_collections import config_dict


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # Task registered in common.envs.
    c.env = "humanoid"
    # Antithetic pairs per iteration; the population is 2 * pairs candidates.
    c.pairs = 8192
    # Candidates evaluated at once (memory is O(candidate_chunk)); divides 2 * pairs.
    c.candidate_chunk = 2048
    # Steps per episode (the humanoid's time limit is 1000).
    c.horizon = 1000
    # If > 0, stop stepping a chunk once every member is done, checking every
    # `early_exit_block` steps (must divide horizon). 0 runs the full scan.
    c.early_exit_block = 50
    # ES iterations to run in total (a resumed run continues up to this number).
    c.num_iterations = 1000
    c.seed = 0
    # Humanoid MJCF; None uses the one bundled in common/assets.
    c.xml_path = config_dict.placeholder(str)
    # Physics profile: "fast" (training) or "gym" (Gymnasium's settings, for parity).
    c.physics = "fast"
    # MJX implementation: "jax" anywhere, "warp" on NVIDIA GPUs.
    c.impl = "jax"
    # Constraint-solver and line-search iterations; None keeps the profile's values.
    c.solver_iterations = config_dict.placeholder(int)
    c.ls_iterations = config_dict.placeholder(int)
    # Evaluate the mean policy every `eval_every` iterations on `eval_episodes` episodes.
    c.eval_every = 10
    c.eval_episodes = 16
    # Results go to results_dir/es/run_name/; None names the run after the config's hash.
    c.results_dir = "results"
    c.run_name = config_dict.placeholder(str)
    # JAX persistent compilation cache; "" turns it off.
    c.compile_cache_dir = "jax_compile_cache"
    return c
