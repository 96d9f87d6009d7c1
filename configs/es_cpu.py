"""The strongest ES setting found to learn on a 2-core CPU in 20 minutes.

    python -m experiments.es --config=configs/es_cpu.py
"""

from configs import es


def get_config():
    c = es.get_config()
    c.pairs = 32
    c.candidate_chunk = 64
    c.horizon = 1000
    c.early_exit_block = 25
    c.num_iterations = 200
    c.eval_every = 10
    c.eval_episodes = 8
    c.policy.size = 64
    c.run_name = "cpu"
    return c
