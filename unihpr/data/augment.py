"""3D pose augmentation in the world frame, to widen a small set of real poses.

[`PoseAugmentation`][] applies, each switchable, the augmentations of the
lifting literature (PoseAug, PoseDA and their predecessors) to world-frame
joints before a camera sees them (see
[`VirtualCameraDataset`][unihpr.data.virtual_cameras.VirtualCameraDataset]):

* **limb recombination**: a limb (the joints below a left/right joint whose
  parent is not paired, e.g. the hips and shoulders) takes the limb of another
  frame, turned into this frame's body orientation, so arms and legs from
  different moments are combined;
* **bone lengths**: every bone is scaled by ``exp(N(0, bone_scale))``, the
  left and right copies of a bone alike, and the whole body by
  ``exp(N(0, body_scale))``;
* **mirroring**: the pose is reflected through a vertical plane through its
  root and its left/right joints are swapped (a new, valid pose);
* **tilt**: a rotation by up to ``tilt`` degrees about a random horizontal
  axis through the root (rotations about the up axis are the cameras' job).

[`RandomFlip`][] mirrors rendered samples (image, 2D and 3D together).

Everything is driven by the [`Skeleton`][unihpr.data.skeletons.Skeleton]
(``parents``, ``flip_pairs``, ``root``), so any layout works.

Examples:
    >>> import torch
    >>> from unihpr.data import HUMANOID15
    >>> aug = PoseAugmentation(mirror=0.5, bone_scale=0.05)
    >>> poses = torch.randn(4, 15, 3, dtype=torch.float64)
    >>> aug(poses, HUMANOID15).shape
    torch.Size([4, 15, 3])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor
from torch.utils.data import Dataset

from unihpr._validate import check_real
from unihpr.data.skeletons import Skeleton, get_skeleton
from unihpr.data.virtual_cameras import up_basis

__all__ = ["PoseAugmentation", "RandomFlip", "limb_roots", "recombine_limbs", "scale_bones"]


@lru_cache(maxsize=32)
def _topological(skeleton: Skeleton) -> tuple[int, ...]:
    depth = []
    for j in range(skeleton.num_joints):
        d, k = 0, j
        while k != skeleton.root:
            k, d = skeleton.parents[k], d + 1
        depth.append(d)
    return tuple(sorted(range(skeleton.num_joints), key=lambda j: depth[j]))


@lru_cache(maxsize=32)
def limb_roots(skeleton: Skeleton) -> tuple[tuple[int, int], ...]:
    """(limb root, its left/right partner) for every joint that starts a limb.

    A limb starts at a joint of a flip pair whose parent is in no flip pair
    (hips and shoulders in the usual layouts); the limb is the joints below it.
    """
    paired = {i for pair in skeleton.flip_pairs for i in pair}
    partner = {a: b for a, b in skeleton.flip_pairs} | {b: a for a, b in skeleton.flip_pairs}
    return tuple(
        (j, partner[j])
        for j in range(skeleton.num_joints)
        if j in paired and skeleton.parents[j] not in paired
    )


def _descendants(skeleton: Skeleton, joint: int) -> list[int]:
    """Joints below ``joint`` (not ``joint`` itself), parents before children."""
    below = []
    for j in _topological(skeleton):
        k = j
        while k not in (joint, skeleton.root) and k >= 0:
            k = skeleton.parents[k]
        if k == joint and j != joint:
            below.append(j)
    return below


def _limb_frame(pose: Tensor, skeleton: Skeleton, root: int, partner: int) -> Tensor:
    """(B, 3, 3) orthonormal frames of the body part a limb hangs from."""
    parent = skeleton.parents[root]
    paired = {i for pair in skeleton.flip_pairs for i in pair}
    spine = [c for c, p in enumerate(skeleton.parents) if p == parent and c not in paired]
    if spine:
        vertical = pose[:, spine[0]] - pose[:, parent]
    elif skeleton.parents[parent] >= 0:
        vertical = pose[:, parent] - pose[:, skeleton.parents[parent]]
    else:
        vertical = torch.zeros_like(pose[:, parent])
        vertical[:, 1] = 1.0
    lateral = pose[:, root] - pose[:, partner]
    e1 = lateral / lateral.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    v = vertical - (vertical * e1).sum(-1, keepdim=True) * e1
    e2 = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    e3 = torch.linalg.cross(e1, e2)
    return torch.stack([e1, e2, e3], dim=-1)


def recombine_limbs(
    pose: Tensor,
    donors: Tensor,
    skeleton: Skeleton | str,
    swap: Tensor,
) -> Tensor:
    """Replace limbs of ``pose`` by the same limbs of ``donors``.

    Args:
        pose: (B, J, 3) world joints.
        donors: (B, J, 3) poses the limbs come from.
        skeleton: The layout (see [`limb_roots`][]).
        swap: (B, L) bool, which of the L limbs of each sample to replace.

    Returns:
        (B, J, 3): limb joints rebuilt from the donor's bone vectors turned from
        the donor's body frame into the recipient's; the limb root and every
        other joint are unchanged.
    """
    sk = get_skeleton(skeleton)
    limbs = limb_roots(sk)
    if swap.shape != (pose.shape[0], len(limbs)):
        raise ValueError(
            f"swap must be (B={pose.shape[0]}, L={len(limbs)}), got {tuple(swap.shape)}"
        )
    out = pose.clone()
    for li, (root, partner) in enumerate(limbs):
        sel = swap[:, li]
        if not bool(sel.any()):
            continue
        rot = _limb_frame(pose, sk, root, partner) @ _limb_frame(
            donors, sk, root, partner
        ).transpose(1, 2)
        for j in _descendants(sk, root):
            p = sk.parents[j]
            bone = donors[:, j] - donors[:, p]
            new = out[:, p] + (rot @ bone[..., None])[..., 0]
            out[:, j] = torch.where(sel[:, None], new, out[:, j])
    return out


def scale_bones(pose: Tensor, skeleton: Skeleton | str, scale: Tensor) -> Tensor:
    """Scale every bone vector: (B, J, 3) poses, (B, J) per-joint bone scales -> (B, J, 3).

    ``scale[:, j]`` multiplies the bone from ``parents[j]`` to ``j`` (the root's
    entry is ignored); the root stays in place.
    """
    sk = get_skeleton(skeleton)
    out = pose.clone()
    for j in _topological(sk):
        p = sk.parents[j]
        if p >= 0:
            out[:, j] = out[:, p] + scale[:, j, None] * (pose[:, j] - pose[:, p])
    return out


@dataclass(frozen=True)
class PoseAugmentation:
    """World-frame 3D pose augmentation (every term switchable; 0 turns it off).

    Attributes:
        limb_swap: Probability that each limb is taken from another frame of the pool.
        bone_scale: Standard deviation of the log scale of each bone (left/right alike).
        body_scale: Standard deviation of the log scale of the whole body.
        mirror: Probability of a left/right mirror.
        tilt: Maximum tilt, degrees, about a random horizontal axis.
    """

    limb_swap: float = 0.0
    bone_scale: float = 0.0
    body_scale: float = 0.0
    mirror: float = 0.0
    tilt: float = 0.0

    def __post_init__(self) -> None:
        # probabilities, log-scale standard deviations and degrees
        for name in ("limb_swap", "mirror", "bone_scale", "body_scale"):
            check_real(name, getattr(self, name), low=0.0, high=1.0, owner="PoseAugmentation")
        check_real("tilt", self.tilt, low=0.0, high=90.0, owner="PoseAugmentation")

    @property
    def active(self) -> bool:
        """Whether any augmentation is switched on."""
        return any((self.limb_swap, self.bone_scale, self.body_scale, self.mirror, self.tilt))

    def __call__(
        self,
        pose: Tensor,
        skeleton: Skeleton | str,
        *,
        up_axis: str = "y",
        pool: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Augment world-frame poses.

        Args:
            pose: (B, J, 3) world joints, metres.
            skeleton: Their layout.
            up_axis: World up axis (``"x"``, ``"y"`` or ``"z"``).
            pool: (N, J, 3) poses the limbs are drawn from (default ``pose`` itself).
            generator: Random generator; torch's global one when ``None``.

        Returns:
            (B, J, 3) augmented poses, ``pose``'s dtype.
        """
        sk = get_skeleton(skeleton)
        if pose.ndim != 3 or pose.shape[1:] != (sk.num_joints, 3):
            raise ValueError(
                f"pose must be (B, {sk.num_joints}, 3) for {sk.name!r}, got {tuple(pose.shape)}"
            )
        dtype, x = pose.dtype, pose.to(torch.float64)
        b, g = x.shape[0], generator
        if self.limb_swap > 0 and limb_roots(sk):
            src = x if pool is None else pool.to(torch.float64)
            donors = src[torch.randint(0, src.shape[0], (b,), generator=g)]
            swap = torch.rand(b, len(limb_roots(sk)), generator=g) < self.limb_swap
            x = recombine_limbs(x, donors, sk, swap)
        if self.bone_scale > 0 or self.body_scale > 0:
            log_s = self.bone_scale * torch.randn(
                b, sk.num_joints, dtype=torch.float64, generator=g
            )
            for left, right in sk.flip_pairs:  # the two sides of a body share proportions
                log_s[:, right] = log_s[:, left]
            log_s = log_s + self.body_scale * torch.randn(b, 1, dtype=torch.float64, generator=g)
            x = scale_bones(x, sk, log_s.exp())
        _, a, c = up_basis(up_axis)  # two horizontal axes
        root = x[:, sk.root : sk.root + 1]
        if self.mirror > 0:
            flip = torch.rand(b, generator=g) < self.mirror
            offset = ((x - root) * a).sum(-1, keepdim=True)
            mirrored = (x - 2 * offset * a)[:, list(sk.flip_permutation)]
            x = torch.where(flip[:, None, None], mirrored, x)
        if self.tilt > 0:
            angle = torch.deg2rad(
                self.tilt * (2 * torch.rand(b, dtype=torch.float64, generator=g) - 1)
            )
            heading = 2 * math.pi * torch.rand(b, dtype=torch.float64, generator=g)
            axis = torch.cos(heading)[:, None] * a + torch.sin(heading)[:, None] * c
            x = root + _rotate(x - root, axis, angle)
        return x.to(dtype)


def _rotate(v: Tensor, axis: Tensor, angle: Tensor) -> Tensor:
    """Rodrigues: rotate (B, J, 3) vectors about unit (B, 3) axes by (B,) radians."""
    k = axis[:, None]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    cross = torch.linalg.cross(k.expand_as(v), v)
    dot = (v * k).sum(-1, keepdim=True)
    return v * cos + cross * sin + k * dot * (1 - cos)


class RandomFlip(Dataset):
    """Mirror image samples left/right with probability ``p`` (images, 2D and 3D alike).

    The image is flipped horizontally, the 2D keypoints follow (``x -> W - x``
    in pixels whose column i covers [i, i + 1)), the camera-frame 3D pose is
    reflected (``x -> -x``) and left and right joints are swapped. A mirrored person is a valid person,
    so this doubles the distinct images without rendering.

    Args:
        dataset: Samples with ``image`` (3, H, W), ``pose2d`` (J, 2), ``pose3d`` (J, 3).
        skeleton: Their joint layout (``flip_pairs``).
        p: Probability of a flip.
        swap_channels: Two colour channels exchanged in a flipped image, for
            renders whose left and right sides have distinct colours (e.g.
            ``(0, 2)`` for ``HumanoidMocap(side_colours=True)``: blue left, red
            right), so that the colours keep naming the sides after the mirror.
    """

    def __init__(
        self,
        dataset: Dataset,
        skeleton: Skeleton | str,
        p: float = 0.5,
        swap_channels: tuple[int, int] | None = None,
    ) -> None:
        check_real("p", p, low=0.0, high=1.0, owner="RandomFlip")
        if swap_channels is not None and (
            len(swap_channels) != 2 or not all(c in (0, 1, 2) for c in swap_channels)
        ):
            raise ValueError(
                f"swap_channels must be two channel indices in 0-2, got {swap_channels!r}"
            )
        self.swap_channels = swap_channels
        self.dataset = dataset
        self.skeleton = get_skeleton(skeleton)
        self.p = float(p)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getattr__(self, name: str):
        # arrays, clips, ... of the wrapped dataset stay reachable
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> dict:
        sample = dict(self.dataset[index])
        if self.p == 0.0 or float(torch.rand(())) >= self.p:
            return sample
        perm = list(self.skeleton.flip_permutation)
        image = sample["image"].flip(-1)
        if self.swap_channels is not None:
            a, b = self.swap_channels
            order = [0, 1, 2]
            order[a], order[b] = b, a
            image = image[order]
        width = image.shape[-1]
        p2d = sample["pose2d"][perm].clone()
        p2d[:, 0] = width - p2d[:, 0]
        p3d = sample["pose3d"][perm].clone()
        p3d[:, 0] = -p3d[:, 0]
        sample.update(image=image, pose2d=p2d, pose3d=p3d)
        return sample
