"""The shared base of the datasets backed by arrays with one row per sample."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset


class ArrayPoseDataset(Dataset):
    """A pose dataset whose samples are rows of equally long numpy arrays.

    Subclasses fill ``self.arrays`` with at least ``pose3d`` ``(N, J, 3)``,
    ``pose2d`` ``(N, J, 2)``, ``bbox`` ``(N, 4)`` and the metadata arrays named
    in [`text_fields`][] and [`int_fields`][]. A sample is the contract's
    dict: the three tensors, the metadata and ``index``.
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
        sample: dict = {k: torch.from_numpy(a[k][i]) for k in ("pose3d", "pose2d", "bbox")}
        sample.update({k: str(a[k][i]) for k in self.text_fields})
        sample.update({k: int(a[k][i]) for k in self.int_fields})
        sample["index"] = i
        return sample
