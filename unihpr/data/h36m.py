"""Human3.6M in the VideoPose3D npz format.

Files: ``data_3d_h36m.npz`` with ``positions_3d``: subject -> action ->
(N, 32, 3) world metres at 50 fps; ``data_2d_h36m_<keypoints>.npz`` with
``positions_2d``: subject -> action -> list of 4 arrays (N_c, 17, 2) pixels,
one per camera in the order of [`CAMERA_IDS`][unihpr.data.h36m_cameras.CAMERA_IDS],
and ``metadata``. ``keypoints="gt"`` are ground-truth projections,
``"cpn_ft_h36m_dbb"`` the usual CPN detections.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from unihpr._validate import check_choice, check_int
from unihpr.data._arrays import NONFINITE_POLICIES, ArrayPoseDataset, apply_nonfinite_policy
from unihpr.data._io import check_array, check_file, load_npz_object
from unihpr.data.cameras import world_to_camera
from unihpr.data.h36m_cameras import CAMERA_IDS, h36m_camera
from unihpr.data.skeletons import H36M32_TO_H36M17

__all__ = [
    "H36M_TEST_SUBJECTS",
    "H36M_TRAIN_SUBJECTS",
    "Human36M",
    "load_h36m_2d",
    "load_h36m_3d",
    "normalize_action",
    "prepare_h36m",
]

H36M_TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")

# Two actions are spelled differently for some subjects in the raw data.
_ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}


def normalize_action(name: str) -> str:
    """Canonical action name: drop the take number, unify spellings.

    ``"Directions 1" -> "Directions"``, ``"TakingPhoto 1" -> "Photo"``.
    """
    base = re.sub(r"\s+\d+$", "", name.strip())
    return _ACTION_ALIASES.get(base, base)


def _is_corrupt(subject: str, action: str) -> bool:
    # The S11 "Directions" take has a corrupt video; every benchmark drops it.
    return subject == "S11" and action == "Directions"


def _finite(arr: np.ndarray, path: Path, key: str, allow: bool) -> np.ndarray:
    if not allow:
        bad = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{path}: {key} has NaN or inf (first at frame {int(np.argmax(bad))}); pass "
                "allow_nonfinite=True to keep such frames (the datasets' nonfinite='mask' "
                "leaves them out)"
            )
    return arr


def load_h36m_3d(
    path: str | os.PathLike, *, allow_nonfinite: bool = False
) -> dict[str, dict[str, np.ndarray]]:
    """Read ``data_3d_h36m.npz``.

    Args:
        path: The file.
        allow_nonfinite: Keep NaN or inf coordinates instead of raising.

    Returns:
        subject -> raw action name -> (N, 32, 3) float32 world-frame metres.

    Raises:
        ValueError: The file is malformed, or (unless ``allow_nonfinite``) holds
            NaN or inf; the message names the file, subject, action and frame.
    """
    p = check_file(path, "Human3.6M 3D (data_3d_h36m.npz)")

    def read(value: object, key: str) -> np.ndarray:
        arr = check_array(value, p, key, (None, 32, 3), "(N, 32, 3)")
        return _finite(arr, p, key, allow_nonfinite).astype(np.float32, copy=False)

    return _per_action(p, "positions_3d", "(N, 32, 3)", read)


def load_h36m_2d(
    path: str | os.PathLike, *, allow_nonfinite: bool = False
) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict]:
    """Read ``data_2d_h36m_<keypoints>.npz``.

    Args:
        path: The file.
        allow_nonfinite: Keep NaN or inf coordinates instead of raising.

    Returns:
        (positions, metadata): subject -> raw action -> list of 4 (N_c, 17, 2)
        float32 pixel arrays (camera order of ``CAMERA_IDS``), and the metadata
        dict (``layout_name``, ``num_joints``, ``keypoints_symmetry``).

    Raises:
        ValueError: As [`load_h36m_3d`][].
    """
    p = check_file(path, "Human3.6M 2D (data_2d_h36m_*.npz)")
    meta = load_npz_object(p, "metadata", "dict with layout_name, num_joints")
    if not isinstance(meta, dict):
        raise ValueError(f"{p}: metadata must be a dict, got {type(meta).__name__}")
    if meta.get("num_joints", 17) != 17:
        raise ValueError(f"{p}: metadata num_joints is {meta['num_joints']!r}, expected 17")

    def read(cams: object, key: str) -> list[np.ndarray]:
        if not isinstance(cams, (list, tuple)) or len(cams) != 4:
            raise ValueError(f"{p}: {key} must be a list of 4 arrays (N, 17, 2), one per camera")
        keys = [f"{key}[{i}]" for i in range(4)]
        return [_finite(_keypoints_2d(c, p, k), p, k, allow_nonfinite) for c, k in zip(cams, keys)]

    return _per_action(p, "positions_2d", "list of 4 (N, 17, 2)", read), meta


def _per_action(path: Path, name: str, what: str, read: Callable[[object, str], Any]) -> dict:
    """``{subject: {action: read(value, key)}}`` of the npz's object ``name``."""
    data = load_npz_object(path, name, f"dict subject -> action -> {what}")
    if not isinstance(data, dict):
        raise ValueError(f"{path}: {name} must be a dict subject -> action -> {what}")
    out = {}
    for subject, actions in data.items():
        if not isinstance(actions, dict):
            raise ValueError(f"{path}: {name}[{subject!r}] must be a dict of actions")
        out[subject] = {a: read(v, f"{name}[{subject!r}][{a!r}]") for a, v in actions.items()}
    return out


def _keypoints_2d(value, path, key: str) -> np.ndarray:
    # Detector files may carry a confidence column after x, y: keep (x, y).
    kp = check_array(value, path, key, (None, 17, None), "(N, 17, 2)")
    if kp.shape[-1] < 2:
        raise ValueError(
            f"{path}: {key} has shape {kp.shape}, expected (N, 17, 2) (x, y pixels, optionally "
            "followed by a confidence)"
        )
    return kp[..., :2].astype(np.float32, copy=False)


def prepare_h36m(
    positions_3d: dict[str, dict[str, np.ndarray]],
    positions_2d: dict[str, dict[str, list[np.ndarray]]],
    subjects: Sequence[str],
    *,
    cameras: Sequence[int] = (0, 1, 2, 3),
    stride: int = 1,
    source: str = "positions_2d",
) -> dict[str, np.ndarray]:
    """Flatten the nested dicts into per-sample arrays.

    For every subject, action and camera: 3D joints are reduced to 17,
    transformed into the camera frame with the published calibration and made
    root-relative; the 2D sequence is truncated to the mocap length (CPN
    sequences can be a few frames longer); every ``stride``-th frame is kept.

    Returns:
        dict with ``pose3d`` (N, 17, 3) float32 camera metres root-relative,
        ``root`` (N, 3) pelvis in camera metres, ``pose2d`` (N, 17, 2) float32
        pixels, ``subject``, ``action`` (normalised), ``action_raw``, ``camera``
        (camera ids) as (N,) string arrays and ``frame`` (N,) int64.
    """
    check_int("stride", stride, low=1)
    cameras = list(cameras)
    if not cameras or any(
        isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c not in range(4)
        for c in cameras
    ):
        raise ValueError(f"cameras must be a non-empty list of indices in 0-3, got {cameras}")
    parts: dict[str, list] = {k: [] for k in ("pose3d", "root", "pose2d", "frame")}
    meta: dict[str, list] = {k: [] for k in ("subject", "action", "action_raw", "camera")}
    for subject in subjects:
        if subject not in positions_3d:
            raise ValueError(f"subject {subject!r} not in the 3D file; has {sorted(positions_3d)}")
        if subject not in positions_2d:
            raise ValueError(f"subject {subject!r} not in the 2D file; has {sorted(positions_2d)}")
        for action in sorted(positions_3d[subject]):
            if _is_corrupt(subject, action):
                continue
            if action not in positions_2d[subject]:
                raise ValueError(f"{source}: no 2D keypoints for {subject} {action!r}")
            world = positions_3d[subject][action][:, H36M32_TO_H36M17]
            n = world.shape[0]
            frames = np.arange(0, n, stride)
            for ci in cameras:
                kp = positions_2d[subject][action][ci]
                if kp.shape[0] < n:
                    raise ValueError(
                        f"{source}: {subject} {action!r} camera {CAMERA_IDS[ci]} has "
                        f"{kp.shape[0]} 2D frames, fewer than the {n} mocap frames"
                    )
                cam = h36m_camera(subject, ci)
                xyz = world_to_camera(world[frames].astype(np.float64), cam.rotation, cam.position)
                root = xyz[:, :1]
                with np.errstate(invalid="ignore"):  # inf - inf: reported by the loader
                    parts["pose3d"].append((xyz - root).astype(np.float32))
                parts["root"].append(root[:, 0].astype(np.float32))
                parts["pose2d"].append(kp[:n][frames])
                parts["frame"].append(frames.astype(np.int64))
                m = len(frames)
                meta["subject"] += [subject] * m
                meta["action"] += [normalize_action(action)] * m
                meta["action_raw"] += [action] * m
                meta["camera"] += [CAMERA_IDS[ci]] * m
    if not parts["pose3d"]:
        raise ValueError(f"no samples for subjects {list(subjects)}")
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out.update({k: np.asarray(v) for k, v in meta.items()})
    return out


class Human36M(ArrayPoseDataset):
    """Human3.6M 2D-3D pairs (no images) following the sample-dict contract.

    Args:
        data_3d: Path to ``data_3d_h36m.npz``.
        data_2d: Path to ``data_2d_h36m_gt.npz`` or ``data_2d_h36m_cpn_ft_h36m_dbb.npz``.
        split: ``"train"`` (S1 S5 S6 S7 S8) or ``"test"`` (S9 S11).
        subjects: Explicit subject list (overrides ``split``).
        cameras: Camera indices to use (default all four).
        stride: Keep every ``stride``-th frame (50 fps source; 50 gives 1 fps).
        nonfinite: Samples whose 3D or 2D pose holds NaN or inf: ``"raise"``
            (default) raises a ``ValueError`` naming the file, the count and
            the first such sample; ``"mask"`` leaves them out with a warning
            (their number is ``num_masked``).

    Samples: ``pose3d`` (17, 3) camera-frame metres, root-relative;
    ``pose2d`` (17, 2) pixels in the 1000x1000 camera image;
    ``subject``, ``action`` (normalised, e.g. "Directions"), ``camera``,
    ``frame``, ``index``.
    """

    def __init__(
        self,
        data_3d: str | os.PathLike,
        data_2d: str | os.PathLike,
        split: str = "train",
        *,
        subjects: Sequence[str] | None = None,
        cameras: Sequence[int] = (0, 1, 2, 3),
        stride: int = 1,
        nonfinite: str = "raise",
    ) -> None:
        if subjects is None:
            check_choice("split", split, ("train", "test"))
            subjects = H36M_TRAIN_SUBJECTS if split == "train" else H36M_TEST_SUBJECTS
        elif isinstance(subjects, str) or not all(isinstance(s, str) for s in subjects):
            raise TypeError(f"subjects must be a list of subject names, got {subjects!r}")
        check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
        # non-finite values are reported (or left out) per sample below
        p3 = load_h36m_3d(data_3d, allow_nonfinite=True)
        p2, self.metadata = load_h36m_2d(data_2d, allow_nonfinite=True)
        self.arrays = prepare_h36m(
            p3, p2, subjects, cameras=cameras, stride=stride, source=str(data_2d)
        )
        self.arrays, self.num_masked = apply_nonfinite_policy(
            self.arrays, nonfinite, {"pose3d": str(data_3d), "pose2d": str(data_2d)}
        )
