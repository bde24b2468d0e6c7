"""The shared base of the datasets backed by arrays with one row per sample."""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import torch
from torch.utils.data import Dataset

from unihpr._validate import check_choice

#: What a loader's ``nonfinite=`` argument accepts.
NONFINITE_POLICIES = ("raise", "mask")


def apply_nonfinite_policy(
    arrays: dict[str, np.ndarray], nonfinite: str, sources: Mapping[str, str]
) -> tuple[dict[str, np.ndarray], int]:
    """Reject, or leave out, the rows whose poses hold NaN or inf.

    Args:
        arrays: Per-sample arrays of equal length, e.g. ``pose3d``, ``pose2d``,
            metadata.
        nonfinite: ``"raise"``: a ``ValueError`` naming the source, the count
            and the first bad row; ``"mask"``: the rows are dropped with a warning.
        sources: Array key -> where it came from (a file name), for the checked
            keys; only these keys are checked.

    Returns:
        ``(arrays, number of rows left out)``.

    Raises:
        ValueError: No rows at all, every row non-finite, or (``"raise"``) some.
    """
    check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
    n = len(next(iter(arrays.values())))
    files = ", ".join(sorted(set(sources.values())))
    if n == 0:
        raise ValueError(f"{files}: no samples to load")
    bad = np.zeros(n, dtype=bool)
    for key, source in sources.items():
        a = arrays[key]
        rows = ~np.isfinite(a.reshape(n, -1)).all(axis=1)
        if rows.any() and nonfinite == "raise":
            i = int(np.argmax(rows))
            where = ", ".join(
                f"{k}={arrays[k][i]}"
                for k in ("subject", "action", "camera", "frame")
                if k in arrays
            )
            raise ValueError(
                f"{source}: {int(rows.sum())} of {n} samples have NaN or inf in {key} (first: "
                f"sample {i}, {where}); pass nonfinite='mask' to leave them out"
            )
        bad |= rows
    count = int(bad.sum())
    if count == n:
        raise ValueError(f"{files}: every sample has NaN or inf poses")
    if count:
        warnings.warn(
            f"{files}: left out {count} of {n} samples with NaN or inf poses (nonfinite='mask')",
            stacklevel=3,
        )
        arrays = {k: v[~bad] for k, v in arrays.items()}
    return arrays, count


class ArrayPoseDataset(Dataset):
    """A pose dataset whose samples are rows of equally long numpy arrays.

    Subclasses fill ``self.arrays`` with at least ``pose3d`` ``(N, J, 3)``,
    ``pose2d`` ``(N, J, 2)`` and the metadata arrays named in
    [`text_fields`][] and [`int_fields`][]. A sample is the contract's dict:
    the two pose tensors, the metadata and ``index``.
    """

    arrays: dict[str, np.ndarray]
    #: metadata arrays copied into every sample as ``str``
    text_fields: tuple[str, ...] = ("subject", "action", "camera")
    #: metadata arrays copied into every sample as ``int``
    int_fields: tuple[str, ...] = ("frame",)

    def __len__(self) -> int:
        return int(self.arrays["pose3d"].shape[0])

    def _row(self, index: int) -> int:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        return int(index) % len(self)

    def __getitem__(self, index: int) -> dict:
        i = self._row(index)
        a = self.arrays
        sample: dict = {k: torch.from_numpy(a[k][i]) for k in ("pose3d", "pose2d")}
        sample.update({k: str(a[k][i]) for k in self.text_fields})
        sample.update({k: int(a[k][i]) for k in self.int_fields})
        sample["index"] = i
        return sample
