"""The top-level API stays small: names a user imports, nothing internal."""

from __future__ import annotations

import unihpr


def test_at_most_35_public_names():
    assert len(unihpr.__all__) <= 35, unihpr.__all__


def test_dir_shows_the_public_names_only():
    assert dir(unihpr) == sorted(unihpr.__all__)
    assert not [n for n in dir(unihpr) if n.startswith("_") and n != "__version__"]


def test_every_public_name_is_documented():
    for name in unihpr.__all__:
        if name != "__version__":
            assert getattr(unihpr, name).__doc__, name
