"""3DPW from the official ``sequenceFiles/<split>/<sequence>.pkl`` files.

Each pickle (Python 2, load with ``encoding="latin1"``) holds, per sequence:
``sequence`` (name), ``genders``, ``betas``, ``poses`` / ``trans`` (per actor,
(N, 72) / (N, 3)), ``jointPositions`` (per actor (N, 72): the 24 SMPL joints in
world metres), ``poses2d`` (per actor (N, 3, 18): OpenPose-18 x, y, confidence),
``cam_poses`` (N, 4, 4) world-to-camera extrinsics, ``cam_intrinsics`` (3, 3),
``campose_valid`` (per actor (N,)) and ``img_frame_ids`` (N,).

H36M-17 joints: the accurate route regresses them from SMPL mesh vertices with
the H36M joint regressor, which needs the (non-redistributable) SMPL model
files. Without them this loader maps the 24 SMPL joints of ``jointPositions``
with [`SMPL24_TO_H36M17`][unihpr.data.skeletons.SMPL24_TO_H36M17], an approximation (exact
for hips, knees, ankles, shoulders, elbows and wrists up to the SMPL/H36M
joint-centre definitions; spine, nose and head top interpolated). Numbers
computed this way are not directly comparable with published 3DPW results.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from unihpr._validate import check_choice, check_int
from unihpr.data._arrays import NONFINITE_POLICIES, ArrayPoseDataset, apply_nonfinite_policy
from unihpr.data._io import check_array, check_file
from unihpr.data._safe_pickle import read_npy, restricted_load
from unihpr.data.cameras import project
from unihpr.data.skeletons import SMPL24_TO_H36M17

__all__ = ["ThreeDPW", "load_3dpw_sequence"]

_REQUIRED = ("sequence", "jointPositions", "cam_poses", "cam_intrinsics", "campose_valid")


def load_3dpw_sequence(path: str | os.PathLike) -> dict:
    """Read and validate one 3DPW sequence pickle.

    Returns:
        dict with ``sequence`` (str), ``joints`` list per actor of (N, 24, 3)
        world metres, ``cam_poses`` (N, 4, 4), ``cam_intrinsics`` (3, 3),
        ``valid`` list per actor of (N,) bool, ``poses2d`` list per actor of
        (N, 18, 3) (x, y, confidence) or None, ``poses``, ``betas``, ``trans``,
        ``genders`` as stored.
    """
    p = check_file(path, "3DPW sequence (.pkl)")
    with open(p, "rb") as f:
        raw = restricted_load(f, p)
    if not isinstance(raw, dict):
        raise ValueError(f"{p}: expected a dict, got {type(raw).__name__}")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise ValueError(f"{p}: missing keys {missing}; keys are {sorted(raw)}")
    cam_poses = check_array(raw["cam_poses"], p, "cam_poses", (None, 4, 4), "(N, 4, 4)")
    n = cam_poses.shape[0]
    k = check_array(raw["cam_intrinsics"], p, "cam_intrinsics", (3, 3), "(3, 3)")
    actors = _per_actor(raw, "jointPositions", p)
    if not actors:
        raise ValueError(f"{p}: jointPositions holds no actor")
    campose_valid = _per_actor(raw, "campose_valid", p, len(actors))
    joints, valid, poses2d = [], [], []
    for a, jp in enumerate(actors):
        jp = check_array(jp, p, f"jointPositions[{a}]", (n, 72), f"({n}, 72)")
        joints.append(jp.reshape(n, 24, 3).astype(np.float64))
        v = np.asarray(campose_valid[a])
        if v.shape != (n,) or not (v.dtype == bool or np.issubdtype(v.dtype, np.number)):
            raise ValueError(
                f"{p}: campose_valid[{a}] has shape {v.shape} and dtype {v.dtype}, expected "
                f"({n},) bool"
            )
        valid.append(v.astype(bool))
    if "poses2d" in raw:
        for a, kp in enumerate(_per_actor(raw, "poses2d", p, len(actors))):
            kp = check_array(kp, p, f"poses2d[{a}]", (n, 3, 18), f"({n}, 3, 18)")
            poses2d.append(np.transpose(kp, (0, 2, 1)).astype(np.float32))
    return {
        "sequence": str(raw["sequence"]),
        "joints": joints,
        "cam_poses": cam_poses.astype(np.float64),
        "cam_intrinsics": k.astype(np.float64),
        "valid": valid,
        "poses2d": poses2d or None,
        **{key: raw.get(key) for key in ("poses", "betas", "trans", "genders")},
    }


def _per_actor(raw: dict, key: str, path: Path, actors: int | None = None) -> list:
    """``raw[key]`` as a list with one entry per actor (``actors`` of them if given)."""
    value = raw[key]
    if isinstance(value, np.ndarray) and value.dtype != object and value.ndim >= 1:
        value = list(value)  # an (A, ...) array stacks the actors
    if not isinstance(value, (list, tuple)) and not (
        isinstance(value, np.ndarray) and value.ndim == 1
    ):
        raise ValueError(
            f"{path}: {key} must be a list with one entry per actor, got {type(value).__name__}"
        )
    if actors is not None and len(value) != actors:
        raise ValueError(
            f"{path}: {key} has {len(value)} actor entries but jointPositions has {actors}"
        )
    return list(value)


def _load_regressor(regressor) -> np.ndarray | None:
    if regressor is None:
        return None
    if isinstance(regressor, (str, os.PathLike)):
        regressor = read_npy(check_file(regressor, "joint regressor (.npy)"))
    w = np.asarray(regressor, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != 17 or w.shape[1] not in (24, 6890):
        raise ValueError(f"regressor must have shape (17, 24) or (17, 6890), got {w.shape}")
    return w


class ThreeDPW(ArrayPoseDataset):
    """3DPW 2D-3D pairs in H36M-17 layout, one sample per valid actor frame.

    Args:
        files: Sequence pickles, or a folder (e.g. ``sequenceFiles/test``) whose
            ``*.pkl`` files are all used.
        regressor: Optional (17, 24) matrix on SMPL joints replacing the default
            approximate mapping, or a (17, 6890) H36M vertex regressor (array or
            ``.npy`` path), which then needs ``vertex_fn``.
        vertex_fn: ``vertex_fn(seq_dict, actor) -> (N, 6890, 3)`` world-frame
            SMPL vertices (e.g. built on an SMPL implementation and its model
            files, which are not bundled).
        stride: Keep every ``stride``-th frame.
        nonfinite: Valid frames whose pose holds NaN or inf: ``"raise"``
            (default) raises a ``ValueError`` naming the sequence; ``"mask"``
            leaves them out with a warning (``num_masked``).

    Samples: ``pose3d`` (17, 3) camera metres root-relative; ``pose2d`` (17, 2)
    projections of the 3D joints with ``cam_intrinsics`` (pixels of the
    1080x1920 frame); ``subject`` = ``action`` = sequence name;
    ``actor``; ``frame``; ``index``.
    """

    text_fields = ("subject", "action")
    int_fields = ("actor", "frame")

    def __init__(
        self,
        files: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        regressor: np.ndarray | str | os.PathLike | None = None,
        vertex_fn: Callable[[dict, int], np.ndarray] | None = None,
        stride: int = 1,
        nonfinite: str = "raise",
    ) -> None:
        if isinstance(files, (str, os.PathLike)) and Path(files).is_dir():
            folder = files
            files = sorted(Path(folder).glob("*.pkl"))
            if not files:
                raise FileNotFoundError(f"no .pkl sequence files found in {str(folder)!r}")
        elif isinstance(files, (str, os.PathLike)):
            files = [files]
        elif isinstance(files, Sequence) and all(isinstance(f, (str, os.PathLike)) for f in files):
            files = list(files)
            if not files:
                raise ValueError("files is empty: give a folder or at least one .pkl file")
        else:
            raise TypeError(f"files must be a path or a list of paths, got {files!r}")
        check_int("stride", stride, low=1)
        check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
        if vertex_fn is not None and not callable(vertex_fn):
            raise TypeError(f"vertex_fn must be callable, got {type(vertex_fn).__name__}")
        w = _load_regressor(regressor)
        if w is not None and w.shape[1] == 6890 and vertex_fn is None:
            raise ValueError("a (17, 6890) vertex regressor needs vertex_fn to produce vertices")
        p3s, p2s, meta = [], [], {k: [] for k in ("subject", "actor", "frame")}
        for f in files:
            seq = load_3dpw_sequence(f)
            for a, joints in enumerate(seq["joints"]):
                idx = np.nonzero(seq["valid"][a])[0][::stride]
                if w is None:
                    h36m = np.einsum("dj,njc->ndc", SMPL24_TO_H36M17, joints[idx])
                elif w.shape[1] == 24:
                    h36m = np.einsum("dj,njc->ndc", w, joints[idx])
                else:
                    verts = np.asarray(vertex_fn(seq, a), dtype=np.float64)
                    if verts.shape != (len(joints), 6890, 3):
                        raise ValueError(
                            f"vertex_fn returned {verts.shape}, expected ({len(joints)}, 6890, 3)"
                        )
                    h36m = np.einsum("dv,nvc->ndc", w, verts[idx])
                ext = seq["cam_poses"][idx]
                cam = np.einsum("nij,nkj->nki", ext[:, :3, :3], h36m) + ext[:, None, :3, 3]
                k = seq["cam_intrinsics"]
                uv = project(cam, (k[0, 0], k[1, 1]), (k[0, 2], k[1, 2]))
                p3s.append(cam - cam[:, :1])
                p2s.append(uv)
                meta["subject"] += [seq["sequence"]] * len(idx)
                meta["actor"].append(np.full(len(idx), a))
                meta["frame"].append(idx)
        self.arrays = {
            "pose3d": np.concatenate(p3s).astype(np.float32),
            "pose2d": np.concatenate(p2s).astype(np.float32),
            "subject": np.asarray(meta["subject"]),
            "actor": np.concatenate(meta["actor"]).astype(np.int64),
            "frame": np.concatenate(meta["frame"]).astype(np.int64),
        }
        self.arrays["action"] = self.arrays["subject"]  # 3DPW has no actions
        sources = ", ".join(str(f) for f in files)
        self.arrays, self.num_masked = apply_nonfinite_policy(
            self.arrays, nonfinite, {"pose3d": sources, "pose2d": sources}
        )
