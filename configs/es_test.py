"""What `test_run.sh` runs: the production config shrunk to minutes on a CPU."""

import ml_collections

from configs import es


def get_config() -> ml_collections.ConfigDict:
    c = es.get_config()
    c.pairs = 32
    c.candidate_chunk = 32
    c.horizon = 200
    c.early_exit_block = 50
    c.num_iterations = 5
    # A few thousand env steps, far from production's 1M between evaluations.
    c.eval_every, c.eval_every_env_steps = 5, 0
    c.eval_episodes = 4
    c.video_seconds = 2.0
    c.results_dir = "test_results"
    return c
