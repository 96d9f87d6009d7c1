"""Train the biped to walk with PPO + AMP: `python -m experiments.ppo_amp --config=configs/ppo_amp.py`.

Any config field can be overridden (`--config.num_envs=1024 --config.amp.enabled=False`);
the same command with the same `--config.run_name` resumes that run.
"""

from collections.abc import Sequence

from ml_collections import config_flags

from common import cli, host_loop
from configs import ppo_amp as ppo_defaults
from ppo_amp import hooks

_CONFIG = config_flags.DEFINE_config_file("config", "configs/ppo_amp.py", "PPO+AMP config file.", lock_config=True)


def main(argv: Sequence[str]) -> None:
    del argv
    host_loop.run(_CONFIG.value, hooks.PIPELINE, ppo_defaults.get_config())


if __name__ == "__main__":
    cli.run(main)
