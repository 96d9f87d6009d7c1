"""Production ES config: 8192 antithetic pairs (16,384 candidates) in chunks of 2048.

Override any field on the command line, e.g. `--config.pairs=2048 --config.seed=3`.

`humanoid_es.fields.fields()` names and explains every ES field, each at the value that
keeps a run from before the field existed as it ran (resumes and the tools complete old
config.json files from it). `get_config()` is production: those fields with the learning settings
measured on the CPU at 256 pairs (where `configs/es_cpu.py` walked one seed in three to
6,923 by 35M env steps) and the step of the population-scaling study (32-512 pairs),
each beside the BENCHMARKS.md section that measured it. 8192 pairs is the mission's fixed
shape; the study expects 2048 pairs (`--config.pairs=2048`, two chunks) to reach a
return in a third to a quarter of its GPU time (BENCHMARKS.md, "ES population scaling").
"""

import ml_collections

from humanoid_es.fields import fields


def get_config() -> ml_collections.ConfigDict:
    c = fields()
    # An iteration's env steps grow tenfold as episodes lengthen (at 8192 pairs ~2M at the
    # 136-step episodes of a run on its way to 6,000): evaluate after every 1M env steps.
    c.eval_every_env_steps = 1_000_000
    # ARS's logs, which the CPU runs are read against, average 20 episodes.
    c.eval_episodes = 20
    # Two Newton iterations, not the `fast` profile's one: with one, training without the
    # survival bonus lunges and falls (384 at 2M env steps); with two, 705 at 2M
    # (BENCHMARKS.md, "The survival bonus and Newton 2 together").
    c.solver_iterations = 2
    # The feet vs the floor and every body pair MuJoCo's filter collides, as Gymnasium
    # does, MJX keeping the 8 deepest: under the legs' pairs alone the ES learned to pass
    # an arm through the chest and lost 59% of the return under Gymnasium; with these seed
    # 0 walks and keeps 101% of it (BENCHMARKS.md, "es_cpu under true body contacts").
    c.contacts = "self"
    c.max_contact_points = 8
    # Train without the survival bonus, as ARS does (evaluations keep it): with it the
    # policy learns to stand and stalls near 570 (BENCHMARKS.md, "The survival bonus and
    # Newton 2 together"; from scratch on seed 1, `fs0-s1` in "Seeds 1 and 2 ... lunge").
    c.reward_shift = 5.0
    # 64 units, inputs in +-0.05: at 0.5 the normalised observations saturate the units
    # (BENCHMARKS.md, "Settings compared"); one unit, a linear policy, learned slower
    # ("From-scratch screens on seed 1"). 256 units were never measured.
    c.policy.size = 64
    c.policy.input_scaling = 0.05
    # ARS's update (pair differences over the returns' std, plain SGD) beat centred ranks
    # under Adam with weight decay at 256 pairs (BENCHMARKS.md, "Settings compared").
    c.fitness_shaping = "ars"
    c.optimizer = "sgd"
    c.weight_decay = 0.0
    # Fixed across populations: 0.02-0.04 did worse at 256 pairs ("Settings compared"),
    # wider noise early was slower on seed 1 ("From-scratch screens on seed 1").
    c.sigma = 0.015
    c.sigma_final = 0.015
    # The best constant step doubled from 32 to 128 pairs (0.00075 to 0.0015) and then
    # stayed: at 512 pairs 0.0015 beat 0.003 and 0.00075 (BENCHMARKS.md, "ES population
    # scaling"). Under ARS scaling that is lr / (2 sigma) = 0.05 times the pairs' mean
    # scaled direction.
    c.learning_rate = 0.0015
    c.learning_rate_final = 0.0015
    c.learning_rate_schedule = "constant"
    return c
