"""Saving and restoring a whole train state (any pytree of arrays) with orbax.

The state is saved whole so a run resumes exactly. Non-array leaves (static parts of
Equinox modules) and empty arrays are not saved: restoring combines the saved arrays with a template
built from the config, so shapes and dtypes are checked against what the run expects.
A checkpoint that cannot be read raises `CheckpointError` naming the directory.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from common.errors import UserError


class _QuietOrbax(logging.Filter):
    """Drops orbax's INFO chatter (dozens of lines per save) from the run's log."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.INFO or f"{os.sep}orbax{os.sep}" not in record.pathname


# orbax logs through absl, whose records all reach this one logger.
_ABSL_LOGGER = logging.getLogger("absl")
if not any(isinstance(f, _QuietOrbax) for f in _ABSL_LOGGER.filters):
    _ABSL_LOGGER.addFilter(_QuietOrbax())


def _stored(x: Any) -> bool:
    """Arrays holding data; empty ones (an MJX field a model does not use) orbax cannot
    write, and the template rebuilds them on restore."""
    return eqx.is_array(x) and x.size > 0


class CheckpointError(UserError):
    """A checkpoint that is missing, corrupt or does not match the run's state."""


class Checkpointer:
    """Keeps the latest `max_to_keep` checkpoints of one run under `directory`."""

    def __init__(self, directory: str, max_to_keep: int = 3, keep_period: int | None = None):
        """`keep_period`: also keep every checkpoint whose step is a multiple of it."""
        self.directory = os.path.abspath(directory)
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=max_to_keep,
                keep_period=keep_period or None,
                create=True,
                # Saves finish before `save` returns: a preempted job must not exit
                # with a checkpoint half written.
                enable_async_checkpointing=False,
            ),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any) -> None:
        arrays = eqx.filter(state, _stored)
        self._manager.save(step, args=ocp.args.StandardSave(arrays), force=True)
        self._manager.wait_until_finished()

    def restore(self, template: Any, step: int | None = None) -> Any:
        """Restores into the structure of `template`; the latest step by default."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        arrays, static = eqx.partition(template, _stored)
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, arrays)
        try:
            restored = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
        except Exception as e:  # orbax raises many types for unreadable data
            raise CheckpointError(
                f"checkpoint {os.path.join(self.directory, str(step))} cannot be restored: "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            ) from None
        for want, got in zip(jax.tree.leaves(arrays), jax.tree.leaves(restored)):
            if np.shape(want) != np.shape(got) or jnp.result_type(want) != jnp.result_type(got):
                raise CheckpointError(
                    f"checkpoint {self.directory}/{step} holds {np.shape(got)} {jnp.result_type(got)} "
                    f"where the run expects {np.shape(want)} {jnp.result_type(want)}"
                )
        if jax.process_count() > 1:
            # Each process holds its shards of the template's global layout; there is no
            # whole host copy to rebuild from.
            return eqx.combine(restored, static)
        # Orbax hands back arrays committed to a device; a fresh state's are not, and jit
        # keys its compilations (and the persistent cache) on that. Rebuilding them from
        # host copies makes a resumed run reuse the first run's compiled executables.
        restored = jax.tree.map(jnp.asarray, jax.device_get(restored))
        return eqx.combine(restored, static)

    def close(self) -> None:
        self._manager.close()


def saved_steps(run_path: str) -> list[int]:
    """The iterations a run in `run_path` has checkpointed (orbax names its step folders by
    number), read without opening a manager, which would create the folder."""
    directory = os.path.join(run_path, "checkpoints")
    return sorted(int(n) for n in os.listdir(directory) if n.isdigit()) if os.path.isdir(directory) else []


def restore_latest(directory: str, template: Any, step: int | None = None) -> Any:
    """The latest checkpoint under `directory` (or the one of `step`), restored into
    `template`'s structure."""
    ckpt = Checkpointer(directory)
    try:
        if step is not None and step not in ckpt.steps():
            raise CheckpointError(f"{directory} has no checkpoint of iteration {step} (it has {ckpt.steps()})")
        return ckpt.restore(template, step)
    finally:
        ckpt.close()
