"""ES on a 2-core CPU: the strongest setting measured so far (BENCHMARKS.md, "ES against ARS").

    python -m experiments.es --config=configs/es_cpu.py

One XLA device per core (`cpu_devices=2`) triples throughput over JAX's single CPU
device, and the work-queue rollout adds ~35% by keeping every slot busy. The update is
ARS-style (return-std-scaled pair differences, plain SGD) on 256 pairs: with 64 or 128
pairs the estimate is so noisy that theta random-walks (its norm grows as
sqrt(iterations)) and the eval return stalls near 330 and 400. A small sigma keeps
candidates close to theta; the reservoir's inputs are scaled so that its units stay out
of saturation. Two Newton iterations and training without the survival bonus (ARS's own
choice) together: with the bonus the policy learns to stand and stalls near 570 by 1M
env steps; without it, under one Newton iteration, it lunges and falls (384 at 2M); with
both it lunges at ~1.3 m/s, 705 at 2M and 743 at 2.7M (seed 0), against ARS's median 488
and 581 at 2M and 3M. Its policies still fall after 100-180 steps (returns near 1,000 by
12M; BENCHMARKS.md, "The humanoid walks"). An early gait swung a leg through the other,
which feet-only contacts allow, and kept 56% of its return under Gymnasium's physics;
with the legs colliding (the `fast` profile's pairs since) it learns later, 659 at 3M,
and keeps 106% (BENCHMARKS.md, "the legs passed through each other"). Those policies'
lunge then lost 59% of its return under Gymnasium: an arm swung through the chest. With
every body pair the MJCF collides (`contacts="self"`, MJX's contacts capped at 8) the
same settings and seed leave the lunge: 2,344 at 9M env steps, 6,466 at 13.5M, and 6,923
at 35M with all 20 evaluation episodes lasting the 1,000 steps (BENCHMARKS.md, "es_cpu
under true body contacts").
"""

import ml_collections

from configs import es


def get_config() -> ml_collections.ConfigDict:
    c = es.get_config()
    c.cpu_devices = 2
    c.pairs = 256
    # Per device 32 members: small batches stop early once all of them have fallen.
    c.candidate_chunk = 64
    c.horizon = 1000
    c.early_exit_block = 25
    # Slots refill from a work queue: ~35% more lived env-steps/s than chunk after chunk.
    c.rollout_queue = True
    # The budget is in env steps (the 35M, where ARS's median seed first reaches
    # 6,000); num_iterations only caps the run.
    c.max_env_steps = 35_000_000
    c.num_iterations = 3000
    # The `fast` profile with 2 Newton iterations in place of 1 (~0.75x its env-steps/s).
    c.solver_iterations = 2
    # The feet vs the floor and all 109 body pairs MuJoCo's filter collides, as Gymnasium
    # does: under the legs' pairs alone an arm passed through the chest. MJX keeps the
    # 8 deepest body contacts (every touching pair of 64 random poses). In the ES loop
    # ~0.6x the pairs' env-steps/s; ~0.25-0.3x without the cap.
    c.contacts = "self"
    c.max_contact_points = 8
    # Train on the return without the survival bonus (5 per step); evaluations keep it.
    c.reward_shift = 5.0
    # An iteration's env steps grow ~10x as episodes lengthen: evaluate by env steps.
    c.eval_every_env_steps = 500_000
    # Iterations of ~500K env steps at full-length episodes take ~80 s here.
    c.checkpoint_every = 5
    # Kept for branches (`init_from=<run>@<iteration>`): every ~2-5M env steps.
    c.checkpoints_keep_every = 50
    # ARS's logs are compared on at least 20 evaluation episodes.
    c.eval_episodes = 20
    # The final video: 15 s is 1,000 steps of 15 ms, a whole episode.
    c.video_seconds = 15.0
    c.policy.size = 64
    c.policy.input_scaling = 0.05
    c.fitness_shaping = "ars"
    c.optimizer = "sgd"
    c.sigma = 0.015
    c.sigma_final = 0.015
    # With ARS scaling the step is lr / (2 sigma) x mean(w_i eps_i): 0.05 falling to 0.017
    # (ARS's Humanoid step is 0.02) over the first 12M env steps, as in the 12M runs that
    # matched ARS's median (BENCHMARKS.md), then held.
    c.learning_rate = 0.0015
    c.learning_rate_final = 0.0005
    c.learning_rate_schedule = "linear"
    c.schedule_env_steps = 12_000_000
    c.weight_decay = 0.0
    c.run_name = "cpu"
    return c
