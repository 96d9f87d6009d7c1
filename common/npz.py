"""Reading `.npz` data files safely: every array loaded with `allow_pickle=False`, and
each way a file can be wrong (missing, not an archive, a bare array, pickled objects)
reported as one line of the caller's error class."""

from __future__ import annotations

import os
import zipfile

import numpy as np

from common.errors import UserError


def read(path: str, error: type[UserError], what: str = ".npz archive") -> dict[str, np.ndarray]:
    """Every array in the archive at `path`; problems raise `error` naming `path`."""
    if not os.path.isfile(path):
        raise error(f"{path}: no such file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise error(f"{path}: not a readable {what} ({' '.join(f'{type(e).__name__}: {e}'.split())})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise error(f"{path}: holds a single array, expected an {what} of named arrays")
    with archive:
        out = {}
        for key in archive.files:
            try:
                out[key] = archive[key]
            except ValueError:
                # numpy refuses object arrays when allow_pickle=False: unpickling runs code.
                raise error(f"{path}: '{key}' holds pickled Python objects, which are refused; "
                            "store plain arrays") from None
    return out
