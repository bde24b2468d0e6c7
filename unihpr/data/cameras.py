"""Camera geometry in numpy: rotations, world<->camera transforms, projection.

Conventions: camera frame x right, y down, z forward (OpenCV). Quaternions
are (w, x, y, z). Pixel coordinates put the centre of pixel column i at
x = i + 0.5 when an image is rendered (see [`unihpr.data.mocap`][]); the
calibrated H36M intrinsics are used exactly as published.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "project",
    "quaternion_to_matrix",
    "world_to_camera",
]


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from quaternions (..., 4) in (w, x, y, z) order.

    Quaternions are normalised first, so any non-zero scaling is accepted.
    """
    q = np.asarray(q, dtype=np.float64)
    if q.shape[-1] != 4:
        raise ValueError(f"q must have shape (..., 4), got {q.shape}")
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(n == 0):
        raise ValueError("q contains a zero quaternion")
    w, x, y, z = np.moveaxis(q / n, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def world_to_camera(points: np.ndarray, rotation: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Map world points (..., 3) into a camera frame.

    Args:
        points: World coordinates (..., 3).
        rotation: Camera-to-world rotation (3, 3) (the camera's orientation).
        center: Camera centre in world coordinates (3,).

    Returns:
        ``R^T (X - c)``, (..., 3).
    """
    points = np.asarray(points)
    if points.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., 3), got {points.shape}")
    return (points - center) @ np.asarray(rotation)


def project(
    points: np.ndarray,
    focal_length: np.ndarray,
    center: np.ndarray,
    radial: np.ndarray | None = None,
    tangential: np.ndarray | None = None,
) -> np.ndarray:
    """Project camera-frame points (..., 3) to pixels (..., 2).

    Distortion follows the Human3.6M toolkit (and VideoPose3D): with normalised
    coordinates ``m = (x/z, y/z)`` and ``r2 = |m|^2``,
    ``m_d = m * (1 + k1 r2 + k2 r2^2 + k3 r2^3 + p.m) + p * r2``, then
    ``u = f * m_d + c``.

    Args:
        points: Camera coordinates (..., 3) with z > 0.
        focal_length: (fx, fy) in pixels.
        center: Principal point (cx, cy) in pixels.
        radial: (k1, k2, k3) or None.
        tangential: (p1, p2) or None.
    """
    points = np.asarray(points)
    if points.shape[-1] != 3:
        raise ValueError(f"points must have shape (..., 3), got {points.shape}")
    m = points[..., :2] / points[..., 2:3]
    if radial is not None or tangential is not None:
        k = np.zeros(3) if radial is None else np.asarray(radial, dtype=np.float64)
        p = np.zeros(2) if tangential is None else np.asarray(tangential, dtype=np.float64)
        r2 = np.sum(m**2, axis=-1, keepdims=True)
        rad = 1 + k[0] * r2 + k[1] * r2**2 + k[2] * r2**3
        tan = np.sum(p * m, axis=-1, keepdims=True)
        m = m * (rad + tan) + p * r2
    return m * np.asarray(focal_length) + np.asarray(center)
