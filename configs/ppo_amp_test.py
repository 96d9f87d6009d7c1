"""PPO+AMP at test size: a few envs, short rollouts, small networks (tests, test_run.sh).

    python -m experiments.ppo_amp --config=configs/ppo_amp_test.py
"""

import ml_collections

from configs import ppo_amp


def get_config() -> ml_collections.ConfigDict:
    c = ppo_amp.get_config()
    c.num_envs = 16
    c.rollout_length = 8
    c.num_iterations = 3
    c.horizon = 100
    c.ppo.hidden = (32, 32)
    c.ppo.epochs = 2
    c.ppo.minibatches = 2
    c.ppo.entropy_decay_iterations = 3
    c.amp.hidden = (32, 32)
    c.amp.batch_size = 32
    c.amp.steps_per_iteration = 2
    c.amp.replay_capacity = 512
    c.amp.generator_speeds = (0.5,)
    c.amp.normalization = "pooled"
    c.amp.input_noise = 1.0
    c.eval_every = 2
    c.eval_episodes = 4
    c.eval_seconds = 1.0
    c.checkpoint_every = 2
    c.video_seconds = 0.5
    c.results_dir = "test_results"
    c.run_name = "ppo_amp_test"
    return c
