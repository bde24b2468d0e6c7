"""Hostile pickles for the no-code-execution tests.

`CreatesFile` unpickles by calling ``builtins.open(path, "w")``: loading it
with an unrestricted unpickler creates ``path``. The tests assert the file
does not exist after a loader has refused the payload, and
`assert_payload_is_live` first proves the payload would have created it.
"""

import pickle
from pathlib import Path

import numpy as np


class CreatesFile:
    """Pickles as ``open(path, "w")``, a stand-in for ``os.system(...)``."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def assert_payload_is_live(marker: Path) -> None:
    """Check that an unrestricted ``pickle.loads`` of the payload creates ``marker``."""
    pickle.loads(pickle.dumps({"x": [CreatesFile(marker)]}, protocol=2)).get("x")[0].close()
    assert marker.exists(), "the payload is inert: the test would prove nothing"
    marker.unlink()


def raw_pickle_npz(path: Path, marker: Path) -> None:
    """A file called ``.npz`` that is a bare pickle: ``np.load(allow_pickle=True)``
    unpickles it whole."""
    path.write_bytes(pickle.dumps({"positions_3d": CreatesFile(marker)}, protocol=2))


def object_member_npz(path: Path, marker: Path, key: str, value_around=None) -> None:
    """A genuine zip npz whose object array ``key`` carries the payload, nested
    inside ``value_around(payload)`` (by default a dict of lists)."""
    wrap = value_around or (lambda p: {"S1": {"Walking": [p]}})
    np.savez(path, **{key: np.array(wrap(CreatesFile(marker)), dtype=object)})
