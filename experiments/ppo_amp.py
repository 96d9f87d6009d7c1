"""Train the biped to walk with PPO + AMP: `python -m experiments.ppo_amp --config=configs/ppo_amp.py`.

Any config field can be overridden (`--config.num_envs=1024 --config.amp.enabled=False`);
the same command with the same `--config.run_name` resumes that run.
"""

from experiments import train

if __name__ == "__main__":
    train.main("ppo_amp")
