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
    c.eval_every = 5
    c.eval_episodes = 4
    c.video_seconds = 2.0
    c.results_dir = "test_results"
    return c
