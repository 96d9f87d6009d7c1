"""Train the humanoid with perturbative ES: `python -m experiments.es --config=configs/es.py`.

Any config field can be overridden (`--config.pairs=1024 --config.seed=3`); the same
command with the same `--config.run_name` resumes that run.
"""

from absl import app
from ml_collections import config_flags

from common import host_loop
from humanoid_es import train

_CONFIG = config_flags.DEFINE_config_file("config", "configs/es.py", "ES config file.", lock_config=True)

if __name__ == "__main__":
    app.run(host_loop.absl_main(train.run, _CONFIG))
