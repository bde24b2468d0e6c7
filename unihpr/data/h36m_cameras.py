"""Published Human3.6M camera calibration (the four cameras, seven subjects).

The numbers live in ``h36m_cameras.json`` next to this module, as distributed
with the dataset and used by VideoPose3D: intrinsics in pixels, extrinsics as
the camera-to-world rotation quaternion (w, x, y, z) and the camera centre in
world millimetres.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

from unihpr._validate import check_choice, check_int
from unihpr.data.cameras import quaternion_to_matrix

__all__ = ["CAMERA_IDS", "H36MCamera", "h36m_camera"]

CAMERA_IDS: tuple[str, ...] = ("54138969", "55011271", "58860488", "60457274")


@functools.cache
def _calibration() -> dict:
    return json.loads(resources.files(__package__).joinpath("h36m_cameras.json").read_text())


@dataclass(frozen=True)
class H36MCamera:
    """One calibrated Human3.6M camera for one subject.

    Attributes:
        id: Camera id, e.g. ``"54138969"``.
        subject: Subject, e.g. ``"S1"``.
        focal_length: (fx, fy) pixels.
        center: (cx, cy) pixels.
        radial: (k1, k2, k3).
        tangential: (p1, p2).
        resolution: (W, H) pixels.
        rotation: Camera-to-world rotation (3, 3).
        position: Camera centre in world metres (3,).
    """

    id: str
    subject: str
    focal_length: np.ndarray
    center: np.ndarray
    radial: np.ndarray
    tangential: np.ndarray
    resolution: tuple[int, int]
    rotation: np.ndarray
    position: np.ndarray


def h36m_camera(subject: str, camera: str | int) -> H36MCamera:
    """The published calibration of ``camera`` (id or index 0-3) for ``subject``."""
    calibration = _calibration()
    check_choice("subject", subject, calibration["extrinsics"])
    if isinstance(camera, str):
        cam_id = check_choice("camera", camera, CAMERA_IDS)
    else:
        cam_id = CAMERA_IDS[
            check_int("camera (an index or one of CAMERA_IDS)", camera, low=0, high=3)
        ]
    intrinsics = {k: np.array(v) for k, v in calibration["intrinsics"][cam_id].items()}
    extrinsics = calibration["extrinsics"][subject][CAMERA_IDS.index(cam_id)]
    return H36MCamera(
        id=cam_id,
        subject=subject,
        **{k: v for k, v in intrinsics.items() if k != "resolution"},
        resolution=tuple(int(v) for v in intrinsics["resolution"]),
        rotation=quaternion_to_matrix(np.array(extrinsics["rotation_wxyz"])),
        position=np.array(extrinsics["center_mm"]) / 1000.0,
    )
