"""MPI-INF-3DHP in the P-STMO npz format.

``data_train_3dhp.npz``: key ``data`` holding a dict ``"S1 Seq1" -> [ {camera:
{"data_3d": (N, 17, 3), "data_2d": (N, 17, 2)}} ]`` (a one-element sequence
whose item is keyed by camera index). ``data_test_3dhp.npz``: ``data`` holding
``"TS1" -> {"data_3d": (N, 17, 3), "data_2d": (N, 17, 2), "valid": (N,)}``.
Joints are the 17 test-set joints in the dataset's order
([`MPI_INF_3DHP17`][unihpr.data.skeletons.MPI_INF_3DHP17], pelvis = 14), 3D in camera
millimetres, 2D in pixels of 2048x2048 images (TS5 and TS6: 1920x1080).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from unihpr._validate import check_bool, check_choice, check_int
from unihpr.data._arrays import NONFINITE_POLICIES, ArrayPoseDataset, apply_nonfinite_policy
from unihpr.data._io import check_array, check_file, load_npz_object
from unihpr.data.mapping import map_joints
from unihpr.data.skeletons import MPI_INF_3DHP17

__all__ = ["MPIInf3DHP", "MPIInf3DHPSequence", "load_3dhp"]

_TEST_SIZES = {"TS5": (1920, 1080), "TS6": (1920, 1080)}


@dataclass
class MPIInf3DHPSequence:
    """One sequence (and camera) of 3DHP: arrays in the file's units and order."""

    subject: str
    sequence: str
    camera: str
    pose3d: np.ndarray  # (N, 17, 3)
    pose2d: np.ndarray  # (N, 17, 2)
    valid: np.ndarray  # (N,) bool
    image_size: tuple[int, int]  # (W, H)


def _arrays(path, key, rec):
    if not isinstance(rec, dict) or "data_3d" not in rec or "data_2d" not in rec:
        raise ValueError(f"{path}: {key} must be a dict with 'data_3d' and 'data_2d'")
    p3 = check_array(rec["data_3d"], path, f"{key}['data_3d']", (None, 17, 3), "(N, 17, 3)")
    p2 = check_array(rec["data_2d"], path, f"{key}['data_2d']", (None, 17, None), "(N, 17, 2)")
    if p2.shape[0] != p3.shape[0] or p2.shape[-1] < 2:
        raise ValueError(
            f"{path}: {key}['data_2d'] has shape {p2.shape}, expected ({p3.shape[0]}, 17, 2)"
        )
    return p3.astype(np.float32), p2[..., :2].astype(np.float32)


def load_3dhp(path: str | os.PathLike) -> list[MPIInf3DHPSequence]:
    """Read a P-STMO ``data_train_3dhp.npz`` or ``data_test_3dhp.npz`` (format auto-detected)."""
    p = check_file(path, "MPI-INF-3DHP (P-STMO npz)")
    data = load_npz_object(p, "data", "dict sequence -> records")
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{p}: 'data' must be a non-empty dict of sequences")
    out = []
    for seq in sorted(data):
        rec = data[seq]
        if isinstance(rec, dict):  # test layout
            p3, p2 = _arrays(p, f"data[{seq!r}]", rec)
            valid = np.asarray(rec.get("valid", np.ones(len(p3))), dtype=bool).reshape(-1)
            if valid.shape[0] != p3.shape[0]:
                raise ValueError(
                    f"{p}: data[{seq!r}]['valid'] has shape {valid.shape}, expected ({len(p3)},)"
                )
            size = _TEST_SIZES.get(seq, (2048, 2048))
            out.append(MPIInf3DHPSequence(seq, seq, "test", p3, p2, valid, size))
        else:  # train layout: [ {camera: record} ]
            try:
                cams = rec[0]
            except (TypeError, IndexError, KeyError):
                cams = None
            if not isinstance(cams, dict):
                raise ValueError(
                    f"{p}: data[{seq!r}] must be a dict (test) or a sequence whose item 0 is "
                    "a dict camera -> {'data_3d', 'data_2d'} (train)"
                )
            subject, _, name = str(seq).partition(" ")
            for cam in sorted(cams, key=str):
                p3, p2 = _arrays(p, f"data[{seq!r}][0][{cam!r}]", cams[cam])
                out.append(
                    MPIInf3DHPSequence(
                        subject, name or subject, str(cam), p3, p2,
                        np.ones(len(p3), dtype=bool), (2048, 2048),
                    )
                )  # fmt: skip
    return out


class MPIInf3DHP(ArrayPoseDataset):
    """MPI-INF-3DHP 2D-3D pairs following the sample-dict contract.

    Args:
        path: ``data_train_3dhp.npz`` or ``data_test_3dhp.npz``.
        layout: ``"h36m17"`` (reordered to H36M-17, the default, so that it can
            be mixed with Human3.6M) or ``"mpi_inf_3dhp17"``.
        units: Units of ``data_3d`` in the file (``"mm"`` for P-STMO files);
            poses are returned in metres.
        stride: Keep every ``stride``-th frame.
        valid_only: Drop test frames marked invalid.
        nonfinite: Frames (after ``valid_only``) whose 3D or 2D pose holds NaN
            or inf: ``"raise"`` (default) raises a ``ValueError`` naming the
            file; ``"mask"`` leaves them out with a warning (``num_masked``).

    Samples: ``pose3d`` (17, 3) camera metres, root-relative; ``pose2d`` (17, 2)
    pixels; ``subject`` ("S1" / "TS1"); ``action`` (sequence);
    ``camera``; ``frame``; ``index``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        layout: str = "h36m17",
        units: str = "mm",
        stride: int = 1,
        valid_only: bool = True,
        nonfinite: str = "raise",
    ) -> None:
        check_choice("layout", layout, ("h36m17", "mpi_inf_3dhp17"))
        scale = {"mm": 1e-3, "m": 1.0}[check_choice("units", units, ("mm", "m"))]
        check_int("stride", stride, low=1)
        check_bool("valid_only", valid_only)
        check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
        p3s, p2s, meta = [], [], {k: [] for k in ("subject", "action", "camera", "frame")}
        for s in load_3dhp(path):
            idx = np.arange(0, len(s.pose3d), stride)
            if valid_only:
                idx = idx[s.valid[idx]]
            root = MPI_INF_3DHP17.root
            with np.errstate(invalid="ignore"):  # inf - inf: reported below
                p3 = (s.pose3d[idx] - s.pose3d[idx, root : root + 1]) * scale
            p3s.append(p3)
            p2s.append(s.pose2d[idx])
            meta["subject"] += [s.subject] * len(idx)
            meta["action"] += [s.sequence] * len(idx)
            meta["camera"] += [s.camera] * len(idx)
            meta["frame"].append(idx)
        pose3d, pose2d = np.concatenate(p3s), np.concatenate(p2s)
        if layout == "h36m17":
            pose3d = map_joints(pose3d, MPI_INF_3DHP17, "h36m17")
            pose2d = map_joints(pose2d, MPI_INF_3DHP17, "h36m17")
        self.arrays = {
            "pose3d": np.ascontiguousarray(pose3d, dtype=np.float32),
            "pose2d": np.ascontiguousarray(pose2d, dtype=np.float32),
            "frame": np.concatenate(meta.pop("frame")).astype(np.int64),
            **{k: np.asarray(v) for k, v in meta.items()},
        }
        self.arrays, self.num_masked = apply_nonfinite_policy(
            self.arrays, nonfinite, {"pose3d": str(path), "pose2d": str(path)}
        )
