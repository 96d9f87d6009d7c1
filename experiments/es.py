"""Train the humanoid with perturbative ES: `python -m experiments.es --config=configs/es.py`.

Any config field can be overridden (`--config.pairs=1024 --config.seed=3`); the same
command with the same `--config.run_name` resumes that run. With `--config.starts=K` it
runs K independent starts and continues the longest-lived one (`humanoid_es.starts`).
"""

from experiments import train

if __name__ == "__main__":
    train.main("es")
