"""Windows of whole clips through virtual cameras, with detector-like occlusion.

[`ClipWindows`][] draws training windows for temporal lifters: a window of T
frames of one clip, resampled to a fixed frame rate with a random playback
speed (users' videos differ in fps), seen by ONE random camera (fixed within
the window), with whole-window pose augmentation (one subject's bone lengths,
limbs recombined from another clip, mirroring, limb-angle perturbation) and
2D corruption as a detector produces it ([`Occlusion`][]): joints, limbs and
whole frames dropped, visible joints moved by gross errors, jitter, and
joints cut off at the image border.

Everything is batched and drawn from the ``generator`` given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from unihpr._validate import check_int, check_real
from unihpr.data.augment import _descendants, _rotate, limb_roots, recombine_limbs, scale_bones
from unihpr.data.skeletons import HUMANOID15, Skeleton, get_skeleton
from unihpr.data.virtual_cameras import (
    CameraDistribution,
    project_to_camera,
    sample_cameras,
    up_basis,
)
from unihpr.geometry import bbox_from_keypoints

__all__ = ["ClipWindows", "Occlusion", "WindowAugmentation", "corrupt_2d", "detector_convention"]

HUMANOID15_INDEX = {name: i for i, name in enumerate(HUMANOID15.joint_names)}


@dataclass(frozen=True)
class Occlusion:
    """2D corruption of a detector (every term 0 turns it off).

    Attributes:
        joint_drop: Per window a rate r ~ U(0, joint_drop); each joint of each frame
            is hidden with probability r.
        limb_drop: Probability per window that one limb is hidden over a random span.
        frame_drop: Per window a rate ~ U(0, frame_drop) of frames with nothing visible.
        span: Probability that only a random contiguous span of the window is
            present (the rest missing): short sequences and single frames.
        displace: Probability that a visible joint is moved (a gross detector error).
        displace_max: Largest move, as a fraction of the frame's box side.
        jitter: Standard deviation of Gaussian noise, fraction of the box side.
        truncate: Probability per window of an image border cutting the body
            (joints beyond it hidden).
        convention: Probability per window of a 2D detector's keypoint convention
            (HUMANOID15 only): the chest and neck made from the hips and shoulders as
            ``lift`` makes them for ``coco17`` / ``mediapipe33``, the hip distance scaled
            by 0.7-1.3, the shoulder distance by 0.7-1.2 and the shoulders moved
            -5% to 15% of the torso towards the hips (detectors place hips and
            shoulders by the body's outline, not at the joint centres: MediaPipe on
            renders of the humanoid gives 0.79x / 0.82x and shoulders 5.5% of the
            torso low, medians in ``results/lift_detector/offsets.json``; on people it
            was not measured).
        clean: Probability per window of no corruption at all but the convention
            (a detector that saw everything).
    """

    joint_drop: float = 0.3
    limb_drop: float = 0.2
    frame_drop: float = 0.1
    span: float = 0.05
    displace: float = 0.03
    displace_max: float = 0.3
    jitter: float = 0.01
    truncate: float = 0.1
    convention: float = 0.0
    clean: float = 0.0

    def __post_init__(self) -> None:
        for f in ("joint_drop", "limb_drop", "frame_drop", "span", "displace", "truncate",
                  "convention", "clean"):  # fmt: skip
            check_real(f, getattr(self, f), low=0.0, high=1.0, owner="Occlusion")
        check_real("displace_max", self.displace_max, low=0.0, high=2.0, owner="Occlusion")
        check_real("jitter", self.jitter, low=0.0, high=1.0, owner="Occlusion")


def _rand(shape, g, lo=0.0, hi=1.0) -> Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=g, dtype=torch.float64)


def corrupt_2d(
    pose2d: Tensor,
    skeleton: Skeleton | str,
    occlusion: Occlusion,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Detector-like corruption of clean keypoints.

    Args:
        pose2d: (B, T, J, 2) pixels.
        skeleton: Their layout (limbs for the limb drops).
        occlusion: What to apply.
        generator: Random generator.

    Returns:
        ``(pose2d (B, T, J, 2), visible (B, T, J) bool)``; hidden joints keep a
        (moved) coordinate, as a detector reports one with a low score.
    """
    sk, o, g = get_skeleton(skeleton), occlusion, generator
    b, t, j, _ = pose2d.shape
    x = pose2d.to(torch.float64)
    if o.convention > 0 and sk.name == "humanoid15":
        on = (_rand(b, g) < o.convention)[:, None, None]
        widen = detector_convention(x, _rand(b, g, -0.3, 0.3), _rand(b, g, -0.3, 0.2),
                                    _rand(b, g, -0.05, 0.15))  # fmt: skip
        x = torch.where(on[..., None], widen, x)
    exact = x
    box = bbox_from_keypoints(x)
    side = (box[..., 2:] - box[..., :2]).amax(-1).clamp_min(1e-6)[..., None, None]  # (B,T,1,1)
    x = x + o.jitter * side * torch.randn(x.shape, generator=g, dtype=torch.float64)
    vis = torch.ones(b, t, j, dtype=torch.bool)
    vis &= _rand((b, t, j), g) >= _rand((b, 1, 1), g, 0, o.joint_drop)
    limbs = limb_roots(sk)
    if o.limb_drop > 0 and limbs:
        which = torch.randint(0, len(limbs), (b,), generator=g)
        on = _rand(b, g) < o.limb_drop
        t0 = torch.randint(0, t, (b,), generator=g)
        t1 = t0 + torch.randint(1, t + 1, (b,), generator=g)
        span = (torch.arange(t) >= t0[:, None]) & (torch.arange(t) < t1[:, None]) & on[:, None]
        for li, (root, _) in enumerate(limbs):
            joints = [root, *_descendants(sk, root)]
            hit = span & (which == li)[:, None]
            vis[:, :, joints] &= ~hit[..., None]
    vis &= (_rand((b, t), g) >= _rand((b, 1), g, 0, o.frame_drop))[..., None]
    if o.span > 0 and t > 1:
        keep = torch.randint(1, t + 1, (b,), generator=g)
        s0 = (_rand(b, g) * (t - keep + 1)).long()
        inside = (torch.arange(t) >= s0[:, None]) & (torch.arange(t) < (s0 + keep)[:, None])
        inside |= (_rand(b, g) >= o.span)[:, None]
        vis &= inside[..., None]
    if o.truncate > 0:
        wbox = bbox_from_keypoints(pose2d.to(torch.float64).flatten(1, 2))  # (B, 4)
        axis = torch.randint(0, 2, (b,), generator=g)
        lo, hi = wbox[torch.arange(b), axis], wbox[torch.arange(b), axis + 2]
        cut = lo + (hi - lo) * _rand(b, g, 0.5, 0.9)  # keep 50-90% of the extent
        bottom = _rand(b, g) < 0.7  # bottom / right cuts (legs out of shot) are commonest
        coord = torch.gather(
            pose2d.to(torch.float64), 3, axis[:, None, None, None].expand(b, t, j, 1)
        )
        coord = coord[..., 0]
        out = torch.where(bottom[:, None, None], coord > cut[:, None, None],
                          coord < (lo + hi - cut)[:, None, None])  # fmt: skip
        vis &= ~(out & (_rand(b, g) < o.truncate)[:, None, None])
    move = (~vis) | (_rand((b, t, j), g) < o.displace)
    angle = _rand((b, t, j), g, 0, 2 * math.pi)
    dist = _rand((b, t, j), g, 0, o.displace_max) * side[..., 0]
    step = torch.stack([angle.cos(), angle.sin()], -1) * dist[..., None]
    x = torch.where(move[..., None], x + step, x)
    if o.clean > 0:
        keep = (_rand(b, g) < o.clean)[:, None, None]
        x, vis = torch.where(keep[..., None], exact, x), vis | keep
    return x.to(pose2d.dtype), vis


def detector_convention(
    pose2d: Tensor, hip_widen: Tensor, shoulder_widen: Tensor, shoulder_drop: Tensor | None = None
) -> Tensor:
    """HUMANOID15 keypoints as a COCO / MediaPipe detector's layout gives them to ``lift``.

    The chest becomes the mean of the hips and shoulders and the neck the mean of the
    shoulders (the ``coco17`` -> ``humanoid15`` mapping), after the hips and the
    shoulders are moved apart from their midpoints by the given fractions and the
    shoulders moved towards the hips by ``shoulder_drop`` times the torso length.

    Args:
        pose2d: (B, ..., 15, 2) HUMANOID15 keypoints.
        hip_widen: (B,) fractions by which the hip distance grows (0.2: 20% wider).
        shoulder_widen: (B,) the same for the shoulders.
        shoulder_drop: (B,) fractions of the hips-to-shoulders distance (default 0).

    Returns:
        (B, ..., 15, 2) keypoints.
    """
    names = HUMANOID15_INDEX
    x = pose2d.clone()
    shape = (-1,) + (1,) * (pose2d.ndim - 2)
    for (a, b_), widen in (
        ((names["left_hip"], names["right_hip"]), hip_widen),
        ((names["left_shoulder"], names["right_shoulder"]), shoulder_widen),
    ):
        mid = 0.5 * (pose2d[..., a, :] + pose2d[..., b_, :])
        f = (1 + widen).view(shape).to(pose2d)
        x[..., a, :] = mid + f * (pose2d[..., a, :] - mid)
        x[..., b_, :] = mid + f * (pose2d[..., b_, :] - mid)
    hips = 0.5 * (x[..., names["left_hip"], :] + x[..., names["right_hip"], :])
    shoulders = 0.5 * (x[..., names["left_shoulder"], :] + x[..., names["right_shoulder"], :])
    if shoulder_drop is not None:
        step = shoulder_drop.view(shape).to(pose2d) * (hips - shoulders)
        for k in ("left_shoulder", "right_shoulder"):
            x[..., names[k], :] += step
        shoulders = shoulders + step
    x[..., names["chest"], :] = 0.5 * (hips + shoulders)
    x[..., names["neck"], :] = shoulders
    x[..., names["root"], :] = hips
    return x


@dataclass(frozen=True)
class WindowAugmentation:
    """Whole-window 3D pose augmentation (one draw per window; 0 turns a term off).

    Attributes:
        bone_scale: Log-std of each bone's scale (left/right alike): one subject's proportions.
        body_scale: Log-std of the whole body's scale.
        limb_swap: Probability that each limb is taken from a window of another clip.
        limb_angle: Largest rotation, degrees, of a whole limb about its root
            (within what hips and shoulders allow).
        mirror: Probability of a left/right mirror.
    """

    bone_scale: float = 0.08
    body_scale: float = 0.08
    limb_swap: float = 0.2
    limb_angle: float = 20.0
    mirror: float = 0.5

    def __post_init__(self) -> None:
        for f in ("bone_scale", "body_scale", "limb_swap", "mirror"):
            check_real(f, getattr(self, f), low=0.0, high=1.0, owner="WindowAugmentation")
        check_real("limb_angle", self.limb_angle, low=0.0, high=90.0, owner="WindowAugmentation")


class ClipWindows:
    """Training windows of whole clips seen through virtual cameras.

    Args:
        clips: ``{name: (N, J, 3)}`` world joints in metres.
        fps: ``{name: frames per second}`` of each clip.
        skeleton: Their layout.
        window: Frames per window T.
        rate: Frame rate of the windows (frames are interpolated linearly).
        speed: (low, high) playback speed, drawn log-uniformly per window.
        cameras: Camera ranges (one camera per window).
        augment: Whole-window 3D augmentation, or ``None``.
        occlusion: 2D corruption, or ``None`` (every joint visible).
    """

    def __init__(
        self,
        clips: Mapping[str, np.ndarray | Tensor],
        fps: Mapping[str, float],
        skeleton: Skeleton | str,
        window: int,
        *,
        rate: float = 30.0,
        speed: tuple[float, float] = (0.5, 2.0),
        cameras: CameraDistribution | None = None,
        augment: WindowAugmentation | None = None,
        occlusion: Occlusion | None = None,
    ) -> None:
        self.skeleton = get_skeleton(skeleton)
        self.window = check_int("window", window, low=1, owner="ClipWindows")
        if not clips or set(clips) != set(fps):
            raise ValueError("clips and fps must be non-empty and name the same clips")
        self.names = sorted(clips)
        arrays = [torch.as_tensor(np.asarray(clips[n]), dtype=torch.float64) for n in self.names]
        self.motion = torch.cat(arrays)
        self.length = torch.tensor([len(a) for a in arrays])
        self.offset = torch.cumsum(self.length, 0) - self.length
        self.fps = torch.tensor([float(fps[n]) for n in self.names], dtype=torch.float64)
        self.rate = check_real("rate", rate, low=0.0, low_open=True, owner="ClipWindows")
        self.speed = (float(speed[0]), float(speed[1]))
        if not 0 < self.speed[0] <= self.speed[1]:
            raise ValueError(f"speed must be (low, high) with 0 < low <= high, got {speed!r}")
        self.cameras = cameras or CameraDistribution()
        self.augment = augment
        self.occlusion = occlusion

    def _windows(self, n: int, g: torch.Generator | None) -> Tensor:
        """World joints (n, T, J, 3) of random windows."""
        dur = (self.length - 1).to(torch.float64) / self.fps
        clip = torch.multinomial(dur + 1e-3, n, replacement=True, generator=g)
        lo, hi = math.log(self.speed[0]), math.log(self.speed[1])
        speed = torch.exp(_rand(n, g, lo, hi))
        span = speed * (self.window - 1) / self.rate
        t0 = _rand(n, g) * (dur[clip] - span).clamp_min(0)
        times = t0[:, None] + speed[:, None] * torch.arange(self.window) / self.rate
        f = (times * self.fps[clip, None]).clamp(max=(self.length[clip] - 1)[:, None])
        i0 = f.floor().long()
        i1 = (i0 + 1).clamp(max=(self.length[clip] - 1)[:, None])
        w = (f - i0)[..., None, None]
        base = self.offset[clip, None]
        return (1 - w) * self.motion[base + i0] + w * self.motion[base + i1]

    def _augment(self, x: Tensor, g: torch.Generator | None) -> Tensor:
        a, sk = self.augment, self.skeleton
        n, t, j, _ = x.shape
        root = sk.root
        if a.limb_swap > 0 and limb_roots(sk):
            donors = self._windows(n, g)
            donors = donors - donors[:, :, root : root + 1] + x[:, :, root : root + 1]
            swap = (_rand((n, len(limb_roots(sk))), g) < a.limb_swap)[:, None].expand(n, t, -1)
            x = recombine_limbs(x.flatten(0, 1), donors.flatten(0, 1), sk, swap.flatten(0, 1))
            x = x.view(n, t, j, 3)
        if a.bone_scale > 0 or a.body_scale > 0:
            log_s = a.bone_scale * torch.randn(n, j, generator=g, dtype=torch.float64)
            for left, right in sk.flip_pairs:
                log_s[:, right] = log_s[:, left]
            log_s = log_s + a.body_scale * torch.randn(n, 1, generator=g, dtype=torch.float64)
            scale = log_s.exp()[:, None].expand(n, t, j).flatten(0, 1)
            x = scale_bones(x.flatten(0, 1), sk, scale).view(n, t, j, 3)
        if a.limb_angle > 0:
            for limb, _ in limb_roots(sk):
                below = _descendants(sk, limb)
                axis = torch.nn.functional.normalize(
                    torch.randn(n, 3, generator=g, dtype=torch.float64), dim=-1
                )
                angle = torch.deg2rad(_rand(n, g, -a.limb_angle, a.limb_angle))
                pivot = x[:, :, limb : limb + 1]
                rel = (x[:, :, below] - pivot).flatten(1, 2)
                rot = _rotate(rel, axis, angle).view(n, t, len(below), 3)
                x = x.clone()
                x[:, :, below] = pivot + rot
        if a.mirror > 0:
            _, ax, _ = up_basis(self.cameras.up_axis)
            flip = _rand(n, g) < a.mirror
            r = x[:, :, root : root + 1]
            offset = ((x - r) * ax).sum(-1, keepdim=True)
            mirrored = (x - 2 * offset * ax)[:, :, list(sk.flip_permutation)]
            x = torch.where(flip[:, None, None, None], mirrored, x)
        return x

    def sample(self, n: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """A batch of ``n`` windows.

        Returns:
            ``pose2d`` (n, T, J, 2) float32 pixels (corrupted), ``visible`` (n, T, J)
            bool, ``pose3d`` (n, T, J, 3) float32 root-relative camera-frame metres.
        """
        n = check_int("n", n, low=1, owner="ClipWindows.sample")
        g = generator
        world = self._windows(n, g)
        if self.augment is not None:
            world = self._augment(world, g)
        t, j = self.window, self.skeleton.num_joints
        root = self.skeleton.root
        cams = sample_cameras(world[:, :, root].mean(1), self.cameras, g)
        # a moving subject may pass the camera: step it back until every joint is 0.5 m ahead
        depth = ((world.flatten(1, 2) - cams.center[:, None]) @ cams.rotation[..., 2:]).amin((1, 2))
        cams.center = cams.center - (0.5 - depth).clamp_min(0)[:, None] * cams.rotation[..., 2]
        cam, uv = project_to_camera(world.flatten(1, 2), cams)
        cam, uv = cam.view(n, t, j, 3), uv.view(n, t, j, 2)
        pose3d = (cam - cam[:, :, root : root + 1]).float()
        if self.occlusion is None:
            vis = torch.ones(n, t, j, dtype=torch.bool)
        else:
            uv, vis = corrupt_2d(uv, self.skeleton, self.occlusion, g)
        return {"pose2d": uv.float(), "visible": vis, "pose3d": pose3d}
