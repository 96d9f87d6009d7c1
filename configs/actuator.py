"""The learned-actuator pipeline: the bench rig's servo, what `collect` records, and how
`train` fits the net.

    python -m experiments.actuator collect --output=actuator_logs
    python -m experiments.actuator train --logs=actuator_logs --output=results/actuator/net

Rig defaults are the issue's floor (ppo_amp/actuator_rig.py ServoModel).
"""

import dataclasses

import ml_collections

from ppo_amp.actuator_rig import ServoModel


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.rig = ml_collections.ConfigDict(dataclasses.asdict(ServoModel()))
    # Per joint kind: training logs of steps, chirps and random walks in turn, each family
    # `segment_seconds` at a time, one continuous run; held-out logs of replayed gait
    # targets (the built-in walking clips at `gait_speeds`, both legs), a family absent
    # from training. 6 kinds x 60 s x 200 Hz = 72k training samples; 6 x 12 s = 14.4k held out.
    c.collect = ml_collections.ConfigDict()
    c.collect.train_seconds = 60.0
    c.collect.heldout_seconds = 12.0
    c.collect.segment_seconds = 5.0
    c.collect.gait_speeds = (0.3, 0.45, 0.6)
    c.net = ml_collections.ConfigDict()
    c.net.history = 3
    # 1.5k parameters: the net runs for 12 joints x 4 substeps x every env, every step.
    c.net.hidden = (32, 32)
    # The comparison net: 47k parameters, the size of the original system's.
    c.net.large_hidden = (150, 150, 150)
    c.net.learning_rate = 3e-3
    c.net.batch_size = 512
    c.net.max_epochs = 200
    c.net.patience = 15
    c.net.validation_fraction = 0.15
    c.net.replay_seconds = 2.0
    # Integration steps per 5 ms tick in the replay and the refinement (the torque held over
    # the tick). 1 is the biped env's own physics step (5 ms, one net call per step), where
    # the net runs; the report also gives the replay at 10 steps per tick.
    c.net.replay_substeps = 1
    # After the torque fit, Adam on the position error of open-loop rollouts through
    # `refine_window_seconds` training windows (what the replay measures), with the torque
    # loss x `refine_torque_weight` beside it; the best net on the validation blocks' windows.
    # 0 keeps the torque fit alone (BENCHMARKS.md, "Learned actuators", compares the two).
    c.net.refine_steps = 2000
    c.net.refine_window_seconds = 1.0
    c.net.refine_learning_rate = 1e-3
    c.net.refine_batch_size = 64
    c.net.refine_torque_weight = 1.0
    return c
