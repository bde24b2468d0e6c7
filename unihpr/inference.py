"""Lift 2D keypoints of any image to 3D: [`lift`][unihpr.inference.lift].

A user's 2D keypoints (MediaPipe Pose, a COCO-17 detector, Human3.6M-17, or
the humanoid's own 15 joints) are converted to the
[`HUMANOID15`][unihpr.data.skeletons.HUMANOID15] layout by the one table of
layout mappings ([`joint_mapping`][unihpr.data.mapping.joint_mapping]; see
[`to_humanoid15`][unihpr.inference.to_humanoid15]), low-confidence joints are
masked, and a UniHPR model trained on that skeleton embeds the 2D pose and
decodes a root-relative 3D pose in metres in the camera frame.

The pixel frame of the input does not matter: the model sees the keypoints in
their own box ([`bbox_from_keypoints`][unihpr.geometry.bbox_from_keypoints],
the box training uses), so moving the person in the image, cropping, or
resizing the image leaves the result unchanged. Keypoints are placed in a
canonical frame of the model's ``bbox_reference`` before they are encoded (the
box centred, its longer side ``CANONICAL_BOX_FILL`` of the frame): a model whose
box token also encodes the box's size and position in pixels then sees boxes
like those of the bundled renders; a model whose box token encodes the box's
shape only is unaffected.
"""

from __future__ import annotations

import functools
import math
import os
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from unihpr.data.mapping import map_joints, map_visibility, mappable_layouts
from unihpr.data.skeletons import HUMANOID15, get_skeleton, list_skeletons
from unihpr.geometry import (
    bbox_from_keypoints,
    denormalize_pose2d,
    normalize_pose2d,
)

if TYPE_CHECKING:
    from unihpr.models.unihpr import UniHPR

__all__ = [
    "CANONICAL_BOX_FILL",
    "DEFAULT_LIFT_MODEL",
    "LIFT_LAYOUTS",
    "clear_model_cache",
    "lift",
    "to_humanoid15",
]

LIFT_LAYOUTS: tuple[str, ...] = tuple(mappable_layouts(HUMANOID15))
"""Keypoint layouts [`lift`][unihpr.inference.lift] accepts: those with a
registered mapping to ``humanoid15`` (``coco17``, ``h36m17``, ``humanoid15``,
``mediapipe33``)."""
DEFAULT_LIFT_MODEL = "unihpr-tiny-mocap"
"""The registry name [`lift`][unihpr.inference.lift] loads by default: ``unihpr-tiny``
trained on the bundled mocap, shipped inside the package (loads with no network)."""
CANONICAL_BOX_FILL = 0.65
"""Longer side of the keypoints' box over ``bbox_reference`` in the canonical frame:
the keypoints of the bundled 64 x 64 renders (``HumanoidMocap``, ``bbox_reference=64``)
fill about 0.65 of their crop, centred."""


def _array(value: object, name: str) -> Tensor:
    """A numpy array or tensor as a CPU-or-wherever tensor of real numbers."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "fiub":
            raise TypeError(f"{name} must hold real numbers, got numpy dtype {value.dtype}")
        return torch.from_numpy(np.ascontiguousarray(value).astype(np.float64, copy=False))
    if isinstance(value, Tensor):
        if value.is_complex():
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        return value.detach()
    raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(value).__name__}")


def _check_layout(layout: object) -> str:
    if not isinstance(layout, str) or layout not in LIFT_LAYOUTS:
        raise ValueError(
            f"layout must be one of {list(LIFT_LAYOUTS)}, got {layout!r} "
            "(see the layouts table of the lifting guide)"
        )
    return layout


def _check_keypoints(kp: Tensor, layout: str) -> None:
    j = get_skeleton(layout).num_joints
    if kp.ndim in (2, 3) and tuple(kp.shape[-2:]) == (j, 2):
        return
    hint = ""
    if kp.ndim in (2, 3) and kp.shape[-2] == j and kp.shape[-1] in (3, 4):
        hint = (
            "; if the last axis also holds z, a score or MediaPipe's visibility, pass "
            "keypoints[..., :2] and the score as confidence="
        )
    elif kp.ndim in (2, 3):
        others = [n for n in list_skeletons() if get_skeleton(n).num_joints == kp.shape[-2]]
        if others:
            hint = f"; {kp.shape[-2]} joints is the layout of {others}"
    raise ValueError(
        f"keypoints for layout {layout!r} must have shape ({j}, 2) for one frame or "
        f"(T, {j}, 2) for a sequence (pixels), got {tuple(kp.shape)}{hint}"
    )


def _where(frame: int, joint: int, layout: str, sequence: bool) -> str:
    name = get_skeleton(layout).joint_names[joint]
    return f"frame {frame}, joint {name!r}" if sequence else f"joint {name!r}"


def _convert(
    keypoints: object,
    layout: object,
    confidence: object,
    confidence_threshold: object,
) -> tuple[Tensor, Tensor, Tensor]:
    """Checked input -> (raw keypoints, HUMANOID15 (N, 15, 2) float64, visible (N, 15))."""
    layout = _check_layout(layout)
    kp = _array(keypoints, "keypoints")
    _check_keypoints(kp, layout)
    sequence = kp.ndim == 3
    flat = kp.reshape(-1, *kp.shape[-2:]).to(torch.float64)
    if isinstance(confidence_threshold, bool) or not isinstance(confidence_threshold, (int, float)):
        raise TypeError(
            f"confidence_threshold must be a number, got {type(confidence_threshold).__name__}"
        )
    if not math.isfinite(confidence_threshold):
        raise ValueError(f"confidence_threshold must be finite, got {confidence_threshold!r}")
    if confidence is None:
        visible = torch.ones(flat.shape[:-1], dtype=torch.bool, device=flat.device)
    else:
        conf = _array(confidence, "confidence")
        if tuple(conf.shape) != tuple(kp.shape[:-1]):
            want = "(T, J)" if sequence else "(J,)"
            raise ValueError(
                f"confidence must have shape {want} = {tuple(kp.shape[:-1])}, one value per "
                f"keypoint of keypoints {tuple(kp.shape)}, got {tuple(conf.shape)}"
            )
        conf = conf.to(device=flat.device, dtype=torch.float64).reshape(flat.shape[:-1])
        if not bool(torch.isfinite(conf).all()):
            raise ValueError("confidence has NaN or infinite values")
        visible = conf >= confidence_threshold
    bad = visible & ~torch.isfinite(flat).all(dim=-1)
    if bool(bad.any()):
        t, j = (int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"keypoints has NaN or infinite coordinates at {int(bad.sum())} joint(s) that are "
            f"not masked (first: {_where(t, j, layout, sequence)}); give them a confidence "
            f"below confidence_threshold={confidence_threshold} to mask them"
        )
    # zeros, not NaN, where hidden: a weight of 0 times NaN would still be NaN
    clean = torch.where(visible[..., None], flat, torch.zeros_like(flat))
    pose = map_joints(clean, layout, HUMANOID15)
    vis = map_visibility(visible, layout, HUMANOID15)
    return kp, pose, vis


def _output(value: Tensor, like: object, like_tensor: Tensor) -> np.ndarray | Tensor:
    """``value`` in the type of the user's ``like`` (numpy in -> numpy out)."""
    dtype = like_tensor.dtype if like_tensor.is_floating_point() else torch.float32
    if isinstance(like, np.ndarray):
        out_dtype = like.dtype if like.dtype.kind == "f" else np.float32
        return value.detach().cpu().numpy().astype(out_dtype)
    return value.to(device=like_tensor.device, dtype=dtype)


def to_humanoid15(
    keypoints: np.ndarray | Tensor,
    layout: str,
    confidence: np.ndarray | Tensor | None = None,
    *,
    confidence_threshold: float = 0.3,
) -> tuple[np.ndarray | Tensor, np.ndarray | Tensor]:
    """2D keypoints of a layout of [`LIFT_LAYOUTS`][unihpr.inference.LIFT_LAYOUTS]
    -> the [`HUMANOID15`][unihpr.data.skeletons.HUMANOID15] joints the model sees.

    Args:
        keypoints: (J, 2) or (T, J, 2) pixels, J the layout's joint count.
        layout: ``"mediapipe33"``, ``"coco17"``, ``"h36m17"`` or ``"humanoid15"``.
        confidence: Optional (J,) or (T, J) scores (MediaPipe's visibility, a
            detector's keypoint scores); joints below ``confidence_threshold``
            are hidden.
        confidence_threshold: Lowest confidence of a visible joint.

    Returns:
        ``(pose2d, visible)``: (15, 2) or (T, 15, 2) pixels, NaN at hidden joints
        (a joint made of several keypoints, e.g. the root = mean of the hips, is
        hidden when any of them is), and (15,) or (T, 15) bool; numpy for numpy
        input, else tensors.

    Raises:
        ValueError: Unknown layout, wrong shapes, or NaN at joints not hidden.

    Examples:
        >>> import numpy as np
        >>> kp = np.random.default_rng(0).uniform(0, 640, size=(17, 2))
        >>> score = np.ones(17)
        >>> score[11] = 0.1  # COCO's left hip
        >>> pose, visible = to_humanoid15(kp, "coco17", score)
        >>> pose.shape, int(visible.sum())
        ((15, 2), 12)
    """
    kp, pose, vis = _convert(keypoints, layout, confidence, confidence_threshold)
    pose = torch.where(vis[..., None], pose, torch.full_like(pose, math.nan))
    lead = tuple(kp.shape[:-2])
    pose, vis = pose.reshape(*lead, *pose.shape[1:]), vis.reshape(*lead, vis.shape[-1])
    if isinstance(keypoints, np.ndarray):
        return _output(pose, keypoints, kp), vis.cpu().numpy()
    return _output(pose, keypoints, kp), vis


@functools.lru_cache(maxsize=4)
def _load(name: str) -> UniHPR:
    from unihpr.models.factory import from_pretrained
    from unihpr.models.hub import PretrainedNotFoundError
    from unihpr.models.registry import find_entry

    if name == DEFAULT_LIFT_MODEL and find_entry(name) is None:
        raise PretrainedNotFoundError(
            f"the default lift model {name!r} is not shipped with this version of unihpr; "
            "pass model= a folder written by save_pretrained() or a loaded UniHPR model "
            "of the humanoid15 skeleton"
        )
    return from_pretrained(name)


def clear_model_cache() -> None:
    """Forget the models [`lift`][unihpr.inference.lift] loaded by name or folder."""
    _load.cache_clear()


def _resolve_model(model: object) -> UniHPR:
    from unihpr.models.unihpr import UniHPR

    if isinstance(model, UniHPR):
        resolved = model
    elif isinstance(model, (str, os.PathLike)):
        resolved = _load(os.fspath(model))
    else:
        raise TypeError(
            f"model must be a registered name, a folder or a UniHPR model, got "
            f"{type(model).__name__}"
        )
    c = resolved.config
    if c.num_joints != HUMANOID15.num_joints or c.root_joint != HUMANOID15.root:
        raise ValueError(
            f"lift needs a model of the humanoid15 skeleton ({HUMANOID15.num_joints} joints, "
            f"root {HUMANOID15.root}); model {c.name!r} has num_joints={c.num_joints}, "
            f"root_joint={c.root_joint}. Use such a model's estimate_3d() with 2D poses of "
            "its own layout instead"
        )
    return resolved


def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an int {bound}, got {value}")
    return value


def _check_visible(vis: Tensor, min_visible: int, sequence: bool) -> None:
    counts = vis.sum(dim=-1)
    few = (counts < min_visible).nonzero().flatten().tolist()
    if not few:
        return
    hidden = [HUMANOID15.joint_names[j] for j in (~vis[few[0]]).nonzero().flatten().tolist()]
    where = (
        f"{len(few)} frame(s) have fewer than min_visible={min_visible} visible humanoid15 "
        f"joints (frames {few[:10]}{' ...' if len(few) > 10 else ''}; frame {few[0]} "
        if sequence
        else f"the pose has fewer than min_visible={min_visible} visible humanoid15 joints ("
    )
    raise ValueError(
        f"{where}has {int(counts[few[0]])}, hidden: {hidden}). Drop such frames, "
        "lower confidence_threshold, or lower min_visible (the model was trained on "
        "whole bodies)"
    )


def _canonical(pose: Tensor, vis: Tensor, reference: float) -> Tensor:
    """Keypoints (N, 15, 2) moved and scaled so their box sits in the canonical frame."""
    box = bbox_from_keypoints(pose, vis)
    side = (box[:, 2:] - box[:, :2]).amax(dim=-1)
    flat = (side <= 0).nonzero().flatten().tolist()
    if flat:
        raise ValueError(
            f"the visible keypoints of frame(s) {flat[:10]} all lie at one point; "
            "lifting needs a pose with extent"
        )
    normed, _ = normalize_pose2d(pose, box, vis)
    half = 0.5 * CANONICAL_BOX_FILL * reference
    centre = 0.5 * reference
    frame = torch.tensor([[centre - half, centre - half, centre + half, centre + half]])
    return denormalize_pose2d(normed, frame.to(normed))


def lift(
    keypoints: np.ndarray | Tensor,
    layout: str,
    confidence: np.ndarray | Tensor | None = None,
    model: str | os.PathLike | UniHPR = DEFAULT_LIFT_MODEL,
    *,
    confidence_threshold: float = 0.3,
    min_visible: int = 8,
    device: str | torch.device | None = None,
    batch_size: int = 1024,
) -> np.ndarray | Tensor:
    """Lift 2D keypoints in pixels of any image to root-relative 3D poses in metres.

    The keypoints are converted to [`HUMANOID15`][unihpr.data.skeletons.HUMANOID15]
    (see [`to_humanoid15`][unihpr.inference.to_humanoid15] and the layouts table
    of the lifting guide), low-confidence joints are masked, and the model lifts
    them from their own box: where the person stands in the image and how large
    the image is do not change the result.

    Args:
        keypoints: (J, 2) for one frame or (T, J, 2) for a sequence, pixels of
            any image (x right, y down), numpy array or tensor; J is the layout's
            joint count (33, 17, 17, 15).
        layout: One of [`LIFT_LAYOUTS`][unihpr.inference.LIFT_LAYOUTS]:
            ``"mediapipe33"``, ``"coco17"``, ``"h36m17"``, ``"humanoid15"``.
        confidence: Optional per-keypoint scores, (J,) or (T, J): MediaPipe's
            ``visibility``, a detector's keypoint scores. Keypoints below
            ``confidence_threshold`` are masked (their coordinates may be NaN);
            a humanoid joint made of several keypoints is masked when any of them is.
        model: A registered name or a folder written by ``save_pretrained`` (loaded
            once and cached; see [`clear_model_cache`][unihpr.inference.clear_model_cache]),
            or a loaded [`UniHPR`][unihpr.models.UniHPR] whose skeleton is HUMANOID15.
        confidence_threshold: Lowest confidence of a visible keypoint.
        min_visible: Fewest visible humanoid joints a frame needs (2 to 15).
        device: Where to run; default: the model's device. A model on another
            device is moved there.
        batch_size: Frames per forward pass.

    Returns:
        (15, 3) or (T, 15, 3) root-relative joints in metres in the camera frame
        (x right, y down, z away from the camera), in the order of
        ``HUMANOID15.joint_names``; a numpy array for numpy input, else a tensor
        on the input's device, in the input's float dtype (float32 for integers).
        A regression decoder makes each frame's result independent of the
        others; a diffusion decoder draws its noise per batch of frames.

    Raises:
        ValueError: Unknown layout (listing the valid ones), wrong shapes (naming
            the layout's J), NaN keypoints that are not masked, a frame with fewer
            than ``min_visible`` visible joints, a confidence of the wrong shape,
            or a model of another skeleton.
        TypeError: Inputs that are not numpy arrays or tensors.
        unihpr.models.PretrainedNotFoundError: ``model`` names no loadable weights.

    Examples:
        >>> import numpy as np, unihpr
        >>> keypoints = np.load("landmarks.npz")["keypoints"]  # doctest: +SKIP
        >>> pose3d = unihpr.lift(keypoints, layout="mediapipe33")  # doctest: +SKIP
        >>> pose3d.shape  # doctest: +SKIP
        (120, 15, 3)
    """
    min_visible = _check_int("min_visible", min_visible, 2, HUMANOID15.num_joints)
    batch_size = _check_int("batch_size", batch_size, 1)
    kp, pose, vis = _convert(keypoints, layout, confidence, confidence_threshold)
    sequence = kp.ndim == 3
    _check_visible(vis, min_visible, sequence)
    net = _resolve_model(model)
    params = next(net.parameters())
    target = params.device if device is None else torch.device(device)
    if params.device != target:
        net.to(target)
    canon = _canonical(pose, vis, net.config.bbox_reference).to(target, params.dtype)
    vis = vis.to(target)
    chunks = [torch.zeros(0, HUMANOID15.num_joints, 3, device=target)]
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for i in range(0, canon.shape[0], batch_size):
                p, m = canon[i : i + batch_size], vis[i : i + batch_size]
                box = bbox_from_keypoints(p, m)
                chunks.append(net.estimate_3d(pose2d=p, bbox=box, mask=m).float())
    finally:
        net.train(was_training)
    out = torch.cat(chunks)
    out = out - out[:, HUMANOID15.root : HUMANOID15.root + 1]
    if not sequence:
        out = out[0]
    return _output(out, keypoints, kp)
