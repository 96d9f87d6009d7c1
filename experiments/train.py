"""The training command of every pipeline: `python -m experiments.<experiment> --config=<file>`.

`experiments/es.py` and `experiments/ppo_amp.py` name their pipeline and call `main`;
`--config` defaults to the pipeline's own config file (`Pipeline.config_file`). Any
config field can be overridden (`--config.pairs=1024 --config.seed=3`); the same command
with the same `--config.run_name` resumes that run. What a run does is the pipeline's
`train` (the shared host loop, or ES's independent starts around it).
"""

from __future__ import annotations

from collections.abc import Sequence

from ml_collections import config_flags

from common import cli
from experiments import pipelines


def main(experiment: str) -> None:
    """Parses the command line and trains the `experiment` pipeline's run it names."""
    pipeline = pipelines.get(experiment)
    config = config_flags.DEFINE_config_file("config", pipeline.config_file, f"{pipeline.title} config file.",
                                             lock_config=True)

    def train(argv: Sequence[str]) -> None:
        del argv
        pipeline.train(config.value, pipeline)

    cli.run(train)
