"""Train the humanoid with perturbative ES: `python -m experiments.es --config=configs/es.py`.

Any config field can be overridden (`--config.pairs=1024 --config.seed=3`); the same
command with the same `--config.run_name` resumes that run. With `--config.starts=K` it
runs K independent starts and continues the longest-lived one (`humanoid_es.starts`).
"""

from collections.abc import Sequence

from ml_collections import config_flags

from common import cli, host_loop
from configs import es as es_fields
from humanoid_es import hooks, starts

_CONFIG = config_flags.DEFINE_config_file("config", "configs/es.py", "ES config file.", lock_config=True)


def main(argv: Sequence[str]) -> None:
    del argv
    config = _CONFIG.value
    if config.starts > 1:
        starts.run(config, hooks.PIPELINE, es_fields.fields())
    else:
        host_loop.run(config, hooks.PIPELINE, es_fields.fields())


if __name__ == "__main__":
    cli.run(main)
