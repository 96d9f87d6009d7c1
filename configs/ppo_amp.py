"""PPO + AMP on the 12-DOF biped at GPU scale (one H200).

    python -m experiments.ppo_amp --config=configs/ppo_amp.py [--config.num_envs=8192]

Every field can be overridden from the command line; the same command with the same
`--config.run_name` resumes the run.
"""

import ml_collections

from ppo_amp.fields import fields


def get_config() -> ml_collections.ConfigDict:
    # Production is every field at its default (ppo_amp/fields.py says what each does).
    return fields()
