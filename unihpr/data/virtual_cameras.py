"""Virtual cameras: 2D/3D pose pairs from world-frame motion, fresh views every draw.

2D–3D pairs need no rendering: any world-frame motion (joints in metres) can
be looked at through as many pinhole cameras as wanted. This module keeps the
sampling and the projection in one place:

* [`CameraDistribution`][] describes where cameras may stand (azimuth,
  elevation, distance, roll, focal length, sensor size) around a target;
* [`sample_cameras`][] draws a batch of look-at cameras;
* [`project_to_camera`][] turns world joints into camera-frame joints and pixels;
* [`VirtualCameraDataset`][] wraps a motion ``(N, J, 3)`` and a
  [`Skeleton`][unihpr.data.skeletons.Skeleton]: every sample it returns is a
  fresh random view (and, optionally, a fresh
  [`PoseAugmentation`][unihpr.data.augment.PoseAugmentation]) of one frame,
  in the sample-dict contract of ``unihpr.data``.

Conventions: camera frame x right, y down, z forward (OpenCV, as in
[`unihpr.data.cameras`][]); rotations are camera-to-world (columns are the
camera axes in world coordinates).

Randomness comes from the ``generator`` given, else from torch's global
generator, which [`Trainer`][unihpr.train.loop.Trainer] seeds and checkpoints:
a resumed run draws the same views as an uninterrupted one.

Examples:
    >>> import torch
    >>> from unihpr.data import HUMANOID15
    >>> motion = torch.randn(10, 15, 3) * 0.3 + torch.tensor([0.0, 1.0, 0.0])
    >>> data = VirtualCameraDataset(motion, HUMANOID15)
    >>> sample = data[3]
    >>> sample["pose2d"].shape, sample["pose3d"].shape
    (torch.Size([15, 2]), torch.Size([15, 3]))
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from unihpr._validate import check_choice, check_generator, check_real
from unihpr.data.skeletons import Skeleton, get_skeleton

__all__ = [
    "CameraDistribution",
    "VirtualCameraDataset",
    "VirtualCameras",
    "WithPoses",
    "project_to_camera",
    "sample_cameras",
    "up_basis",
]

_UP_AXES = {"x": 0, "y": 1, "z": 2}


def _check_range(name: str, value: Sequence[float], low: float = -math.inf) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi or lo < low:
        raise ValueError(
            f"{name} must be a finite (low, high) with {low} <= low <= high, got {value!r}"
        )
    return lo, hi


@dataclass(frozen=True)
class CameraDistribution:
    """Where virtual cameras stand and what they see (uniform in every range).

    The defaults cover the cameras of [`HumanoidMocap`][unihpr.data.HumanoidMocap]
    (azimuth all round, elevation -5..25 degrees, 3.5-6 m, f 1000-1300 px on a
    1000 x 1000 sensor) and widen them a little (elevation, roll, distance),
    so that a lifter trained on them does not learn one rig.

    Attributes:
        azimuth: Degrees around the up axis.
        elevation: Degrees above the horizontal plane through the target.
        distance: Camera-to-target distance, metres.
        roll: Degrees of rotation of the camera about its optical axis.
        focal: Focal length, pixels.
        sensor: (width, height) of the sensor, pixels; the principal point is its centre.
        aim_jitter: Standard deviation (metres) of the aim point around the target.
        up_axis: World up axis of the motion: ``"y"`` (DeepMimic, BVH) or ``"z"`` (H36M).
    """

    azimuth: tuple[float, float] = (-180.0, 180.0)
    elevation: tuple[float, float] = (-10.0, 30.0)
    distance: tuple[float, float] = (3.0, 7.0)
    roll: tuple[float, float] = (-5.0, 5.0)
    focal: tuple[float, float] = (1000.0, 1300.0)
    sensor: tuple[float, float] = (1000.0, 1000.0)
    aim_jitter: float = 0.05
    up_axis: str = "y"

    def __post_init__(self) -> None:
        object.__setattr__(self, "azimuth", _check_range("azimuth", self.azimuth))
        elevation = _check_range("elevation", self.elevation, low=-89.0)
        if elevation[1] > 89.0:
            raise ValueError(f"elevation must lie in [-89, 89] degrees, got {self.elevation!r}")
        object.__setattr__(self, "elevation", elevation)
        object.__setattr__(self, "distance", _check_range("distance", self.distance, low=1e-3))
        object.__setattr__(self, "roll", _check_range("roll", self.roll))
        object.__setattr__(self, "focal", _check_range("focal", self.focal, low=1e-3))
        object.__setattr__(self, "sensor", _check_range("sensor", self.sensor, low=1.0))
        check_real("aim_jitter", self.aim_jitter, low=0.0)
        check_choice("up_axis", self.up_axis, _UP_AXES)


@dataclass
class VirtualCameras:
    """A batch of pinhole cameras (float64).

    Attributes:
        rotation: (B, 3, 3) camera-to-world rotations.
        center: (B, 3) camera centres, world metres.
        intrinsics: (B, 3, 3) K matrices, pixels.
    """

    rotation: Tensor
    center: Tensor
    intrinsics: Tensor


def up_basis(up_axis: str, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    """Orthonormal (up, a, b) world axes with ``a x b = up`` (right-handed).

    Args:
        up_axis: ``"x"``, ``"y"`` or ``"z"``.
        dtype: dtype of the three (3,) vectors.
    """
    i = _UP_AXES[check_choice("up_axis", up_axis, _UP_AXES)]
    eye = torch.eye(3, dtype=dtype)
    return eye[i], eye[(i + 1) % 3], eye[(i + 2) % 3]


def _uniform(rng: tuple[float, float], n: int, generator: torch.Generator | None) -> Tensor:
    lo, hi = rng
    return lo + (hi - lo) * torch.rand(n, dtype=torch.float64, generator=generator)


def sample_cameras(
    target: Tensor,
    distribution: CameraDistribution | None = None,
    generator: torch.Generator | None = None,
) -> VirtualCameras:
    """Draw one look-at camera per target point.

    Args:
        target: (B, 3) world points the cameras aim at (e.g. the root joint), metres.
        distribution: Camera ranges; [`CameraDistribution`][] defaults when ``None``.
        generator: Random generator; torch's global one when ``None``.

    Returns:
        ``VirtualCameras`` of batch B, float64.
    """
    dist = distribution or CameraDistribution()
    if not isinstance(target, Tensor) or target.ndim != 2 or target.shape[1] != 3:
        raise ValueError(f"target must be a (B, 3) tensor, got {getattr(target, 'shape', target)}")
    target = target.to(torch.float64)
    n = target.shape[0]
    up, a, b = up_basis(dist.up_axis)
    az = torch.deg2rad(_uniform(dist.azimuth, n, generator))
    el = torch.deg2rad(_uniform(dist.elevation, n, generator))
    d = _uniform(dist.distance, n, generator)
    roll = torch.deg2rad(_uniform(dist.roll, n, generator))
    f = _uniform(dist.focal, n, generator)
    jitter = dist.aim_jitter * torch.randn(n, 3, dtype=torch.float64, generator=generator)
    aim = target + jitter
    direction = (
        torch.cos(el)[:, None] * (torch.sin(az)[:, None] * a + torch.cos(az)[:, None] * b)
        + torch.sin(el)[:, None] * up
    )
    center = aim + d[:, None] * direction
    z = -direction  # optical axis: from the camera to the aim point
    x = torch.linalg.cross(z, up.expand_as(z))
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x)  # points "down" in the image
    rot = torch.stack([x, y, z], dim=-1)  # columns = camera axes in world coordinates
    c, s = torch.cos(roll), torch.sin(roll)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    r_roll = torch.stack(
        [torch.stack([c, -s, zero], -1), torch.stack([s, c, zero], -1),
         torch.stack([zero, zero, one], -1)], -2,
    )  # fmt: skip
    rot = rot @ r_roll
    k = torch.zeros(n, 3, 3, dtype=torch.float64)
    k[:, 0, 0] = k[:, 1, 1] = f
    k[:, 0, 2] = dist.sensor[0] / 2
    k[:, 1, 2] = dist.sensor[1] / 2
    k[:, 2, 2] = 1.0
    return VirtualCameras(rotation=rot, center=center, intrinsics=k)


def project_to_camera(world: Tensor, cameras: VirtualCameras) -> tuple[Tensor, Tensor]:
    """World joints -> camera-frame joints and pixels.

    Args:
        world: (B, J, 3) world joints, metres.
        cameras: B cameras.

    Returns:
        ``(camera (B, J, 3) metres, pixels (B, J, 2))`` in ``world``'s dtype.

    Raises:
        ValueError: A joint is not in front of its camera (z <= 1 cm).
    """
    if not isinstance(world, Tensor) or world.ndim != 3 or world.shape[-1] != 3:
        raise ValueError(f"world must be a (B, J, 3) tensor, got {getattr(world, 'shape', world)}")
    if world.shape[0] != cameras.rotation.shape[0]:
        raise ValueError(f"world has batch {world.shape[0]}, cameras {cameras.rotation.shape[0]}")
    w = world.to(torch.float64)
    cam = (w - cameras.center[:, None]) @ cameras.rotation
    if bool((cam[..., 2] <= 1e-2).any()):
        raise ValueError(
            "a joint lies behind a virtual camera (z <= 1 cm): increase "
            "CameraDistribution.distance for this motion"
        )
    k = cameras.intrinsics
    uv = cam[..., :2] / cam[..., 2:3] * torch.stack([k[:, 0, 0], k[:, 1, 1]], -1)[:, None]
    uv = uv + k[:, None, :2, 2]
    return cam.to(world.dtype), uv.to(world.dtype)


class VirtualCameraDataset(Dataset):
    """World-frame motion seen through a fresh random camera at every access.

    Sample ``i`` is frame ``i`` of ``motion`` (optionally augmented by
    ``augment``) seen by a camera drawn from ``cameras``, in the
    ``unihpr.data`` sample contract:

    * ``pose2d`` (J, 2) float32 pixels of the virtual sensor;
    * ``pose3d`` (J, 3) float32 camera-frame metres, relative to the root joint;
    * ``subject`` / ``action`` (the clip name), ``frame``, ``index``.

    Batched access (``__getitems__``, used by ``DataLoader``) draws all cameras of
    a batch at once.

    Args:
        motion: (N, J, 3) world joints in metres (numpy or torch).
        skeleton: The joint layout (a [`Skeleton`][unihpr.data.skeletons.Skeleton] or its
            name); its ``root`` is the re-centring joint and its ``flip_pairs``
            and ``parents`` drive the augmentations.
        cameras: Camera ranges (default [`CameraDistribution`][]).
        augment: A [`PoseAugmentation`][unihpr.data.augment.PoseAugmentation] applied
            in the world frame before the camera, or ``None``.
        clips: N clip names (default ``"motion"``); used as ``subject`` / ``action``.
        frames: N frame numbers within their clip (default ``0..N-1``).
        generator: Random generator; torch's global one when ``None``.
    """

    def __init__(
        self,
        motion: np.ndarray | Tensor,
        skeleton: Skeleton | str,
        cameras: CameraDistribution | None = None,
        augment: Any = None,
        clips: Sequence[str] | None = None,
        frames: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        self.skeleton = get_skeleton(skeleton)
        motion = torch.as_tensor(np.asarray(motion) if not isinstance(motion, Tensor) else motion)
        if not motion.is_floating_point():
            raise TypeError(f"motion must be floating point, got {motion.dtype}")
        j = self.skeleton.num_joints
        if motion.ndim != 3 or motion.shape[1:] != (j, 3) or motion.shape[0] == 0:
            raise ValueError(
                f"motion must have shape (N, {j}, 3) for skeleton {self.skeleton.name!r}, "
                f"got {tuple(motion.shape)}"
            )
        if not bool(torch.isfinite(motion).all()):
            raise ValueError("motion has NaN or infinite coordinates")
        self.motion = motion.to(torch.float64)
        n = motion.shape[0]
        self.clips = [str(c) for c in clips] if clips is not None else ["motion"] * n
        self.frames = [int(f) for f in frames] if frames is not None else list(range(n))
        if len(self.clips) != n or len(self.frames) != n:
            raise ValueError(
                f"clips ({len(self.clips)}) and frames ({len(self.frames)}) need one entry per "
                f"motion frame ({n})"
            )
        if cameras is not None and not isinstance(cameras, CameraDistribution):
            raise TypeError(
                f"cameras must be a CameraDistribution or None, got {type(cameras).__name__}"
            )
        if augment is not None and not callable(augment):
            raise TypeError(
                f"augment must be callable (a PoseAugmentation) or None, got {augment!r}"
            )
        self.cameras = cameras or CameraDistribution()
        self.augment = augment
        self.generator = check_generator(generator)

    def __len__(self) -> int:
        return int(self.motion.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Samples of ``indices``, with cameras (and augmentations) drawn in one batch."""
        n = len(self)
        idx = [int(i) for i in indices]
        bad = [i for i in idx if not -n <= i < n]
        if bad:
            raise IndexError(f"indices {bad} out of range for {n} frames")
        idx = [i % n for i in idx]
        world = self.motion[idx]
        if self.augment is not None:
            world = self.augment(
                world, self.skeleton, up_axis=self.cameras.up_axis, pool=self.motion,
                generator=self.generator,
            )  # fmt: skip
        root = self.skeleton.root
        cams = sample_cameras(world[:, root], self.cameras, self.generator)
        cam, uv = project_to_camera(world, cams)
        pose3d = (cam - cam[:, root : root + 1]).float()
        pose2d = uv.float()
        return [
            {
                "pose2d": pose2d[k],
                "pose3d": pose3d[k],
                "subject": self.clips[i],
                "action": self.clips[i],
                "frame": self.frames[i],
                "index": i,
            }
            for k, i in enumerate(idx)
        ]


class WithPoses(Dataset):
    """Attach a random 2D–3D pair of ``poses`` to every sample of ``dataset``.

    Sample ``i`` is ``dataset[i]`` plus ``"poses"``: ``poses[k]`` for a random
    ``k`` (drawn from torch's global generator, which the trainer checkpoints).
    With ``poses`` a [`VirtualCameraDataset`][] the fine-tuning stage learns
    from a fresh view of a random training frame next to every rendered image
    (see [`FinetuneStage`][unihpr.train.stages.FinetuneStage]).

    Args:
        dataset: The main samples (e.g. rendered images with their 2D and 3D).
        poses: Samples with ``pose2d`` and ``pose3d`` (and optional ``mask``).
    """

    def __init__(self, dataset: Dataset, poses: Dataset) -> None:
        if len(poses) == 0:  # type: ignore[arg-type]
            raise ValueError("poses is empty")
        self.dataset = dataset
        self.poses = poses

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """Samples of ``indices``, each with a random pose pair under ``"poses"``."""
        picks = torch.randint(0, len(self.poses), (len(indices),)).tolist()  # type: ignore[arg-type]
        fetch = getattr(self.poses, "__getitems__", None)
        extra = fetch(picks) if fetch is not None else [self.poses[k] for k in picks]
        out = []
        for i, pose in zip(indices, extra):
            sample = dict(self.dataset[i])
            sample["poses"] = {k: pose[k] for k in ("pose2d", "pose3d", "mask") if k in pose}
            out.append(sample)
        return out
