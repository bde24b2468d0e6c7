"""Lift 2D keypoints of any image or video to 3D: [`lift`][unihpr.inference.lift].

A user's 2D keypoints (MediaPipe Pose, a COCO-17 detector, Human3.6M-17, or
the humanoid's own 15 joints) are converted to the
[`HUMANOID15`][unihpr.data.skeletons.HUMANOID15] layout by the one table of
layout mappings ([`joint_mapping`][unihpr.data.mapping.joint_mapping]; see
[`to_humanoid15`][unihpr.inference.to_humanoid15]), low-confidence and
non-finite joints are masked, and a UniHPR model trained on that skeleton
embeds the 2D pose and decodes a root-relative 3D pose in metres in the camera
frame. Frames the model cannot lift (too few visible joints, a box of no
extent) are filled from their neighbours in time, so a sequence always comes
back whole.

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

import copy
import functools
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from unihpr._validate import (
    check_bool,
    check_choice,
    check_device,
    check_int,
    check_real,
    check_tensor,
)
from unihpr.data.mapping import map_joints, map_visibility, mappable_layouts
from unihpr.data.skeletons import HUMANOID15, get_skeleton, list_skeletons
from unihpr.geometry import bbox_from_keypoints

if TYPE_CHECKING:
    from unihpr.models.temporal import TemporalLifter
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
DEFAULT_LIFT_MODEL = "unihpr-temporal-mocap"
"""The model [`lift`][unihpr.inference.lift] loads by default: the window-27
[`TemporalLifter`][unihpr.models.temporal.TemporalLifter] trained on the bundled
mocap with occlusion and detector-noise augmentation, shipped inside the package
(loads with no network; its model card has the measured numbers)."""
_DEFAULT_LIFT_WEIGHTS = "package://unihpr.models.weights/unihpr-temporal-mocap"
CANONICAL_BOX_FILL = 0.65
"""Longer side of the keypoints' box over ``bbox_reference`` in the canonical frame:
the keypoints of the bundled 64 x 64 renders (``HumanoidMocap``, ``bbox_reference=64``)
fill about 0.65 of their crop, centred."""
FILL_MODES = ("interpolate", "nan")
"""What [`lift`][unihpr.inference.lift] puts in frames it cannot lift (its ``fill=``)."""


def _array(value: object, name: str, *, allow_bool: bool = False) -> Tensor:
    """A numpy array or tensor of real numbers as a tensor (numpy: float64 on the CPU)."""
    kinds = "fiub" if allow_bool else "fiu"
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in kinds:
            raise TypeError(f"{name} must hold real numbers, got numpy dtype {value.dtype}")
        return torch.from_numpy(np.ascontiguousarray(value, dtype=np.float64))
    if isinstance(value, Tensor):
        check_tensor(name, value)
        if value.is_complex() or (value.dtype == torch.bool and not allow_bool):
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        return value.detach()
    raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(value).__name__}")


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


def _convert(
    keypoints: object,
    layout: object,
    confidence: object,
    confidence_threshold: object,
) -> tuple[Tensor, Tensor, Tensor]:
    """Checked input -> (raw keypoints, HUMANOID15 (N, 15, 2) float64, visible (N, 15))."""
    layout = check_choice("layout", layout, LIFT_LAYOUTS)
    kp = _array(keypoints, "keypoints")
    _check_keypoints(kp, layout)
    flat = kp.reshape(-1, *kp.shape[-2:]).to(torch.float64)
    threshold = check_real("confidence_threshold", confidence_threshold)
    # detectors write NaN (or inf) for joints they missed: such a joint is hidden
    visible = torch.isfinite(flat).all(dim=-1)
    if confidence is not None:
        conf = _array(confidence, "confidence", allow_bool=True)
        if tuple(conf.shape) != tuple(kp.shape[:-1]):
            want = "(T, J)" if kp.ndim == 3 else "(J,)"
            raise ValueError(
                f"confidence must have shape {want} = {tuple(kp.shape[:-1])}, one value per "
                f"keypoint of keypoints {tuple(kp.shape)}, got {tuple(conf.shape)}"
            )
        conf = conf.to(device=flat.device, dtype=torch.float64).reshape(flat.shape[:-1])
        visible &= conf >= threshold  # a NaN score compares False: hidden
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
            Keypoints with a NaN or infinite coordinate are hidden.
        confidence: Optional (J,) or (T, J) scores (MediaPipe's visibility, a
            detector's keypoint scores) or a bool visibility mask; joints below
            ``confidence_threshold`` or with a NaN score are hidden.
        confidence_threshold: Lowest confidence of a visible joint.

    Returns:
        ``(pose2d, visible)``: (15, 2) or (T, 15, 2) pixels, NaN at hidden joints
        (a joint made of several keypoints, e.g. the root = mean of the hips, is
        hidden when any of them is), and (15,) or (T, 15) bool; numpy for numpy
        input, else tensors.

    Raises:
        ValueError: Unknown layout or wrong shapes.
        TypeError: Keypoints that are not real numbers (bool included).

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
def _load(name: str, device: str) -> UniHPR | TemporalLifter:
    """A named model on ``device``: one cached copy per (name, device), never moved later.

    The default lift model and folders whose ``config.json`` describes a
    [`TemporalLifter`][unihpr.models.temporal.TemporalLifter] (it has a
    ``window``) load as one; other names and folders as a UniHPR model.
    """
    from unihpr.models.factory import from_pretrained
    from unihpr.models.hub import CONFIG_NAME, read_config_json
    from unihpr.models.registry import resolve_package_path
    from unihpr.models.temporal import TemporalLifter

    if name == DEFAULT_LIFT_MODEL:
        return TemporalLifter.from_pretrained(resolve_package_path(_DEFAULT_LIFT_WEIGHTS), device)
    config = Path(name) / CONFIG_NAME
    if config.is_file() and "window" in read_config_json(config):
        return TemporalLifter.from_pretrained(name, map_location=device)
    return from_pretrained(name).to(device).eval()


def clear_model_cache() -> None:
    """Forget the models [`lift`][unihpr.inference.lift] loaded by name or folder."""
    _load.cache_clear()


def _resolve_model(model: object, device: object) -> UniHPR | TemporalLifter:
    """The model to run, on ``device``; the user's model and the cached ones are never moved."""
    from unihpr.models.temporal import TemporalLifter
    from unihpr.models.unihpr import UniHPR

    target = None if device is None else check_device("device", device, owner="lift")
    if target is not None and target.type == "meta":
        raise ValueError("lift: device='meta' holds no data; pass a device that computes")
    if isinstance(model, (UniHPR, TemporalLifter)):
        resolved = model
        current = next(model.parameters()).device
        if current.type == "meta":
            raise ValueError("lift: model is on the meta device (no weights); load its weights")
        if target is not None and current != target:
            resolved = copy.deepcopy(model).to(target)
    elif isinstance(model, (str, os.PathLike)):
        resolved = _load(os.fspath(model), str(target or torch.device("cpu")))
    else:
        raise TypeError(
            f"model must be a registered name, a folder, a UniHPR or a TemporalLifter, got "
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


def _canonical(
    pose: Tensor, vis: Tensor, reference: float, min_visible: int
) -> tuple[Tensor, Tensor]:
    """Keypoints (N, 15, 2) moved and scaled so their box sits in the canonical frame.

    Returns:
        ``(canonical (N, 15, 2), visible (N, 15))``: hidden joints at the frame's
        centre; frames the model cannot lift (fewer than ``min_visible`` visible
        joints, a box of no extent, coordinates too large to normalise) have no
        visible joint.
    """
    box = bbox_from_keypoints(pose, vis)
    lo, hi = box[:, None, :2], box[:, None, 2:]
    half = 0.5 * (hi - lo).amax(dim=-1, keepdim=True)
    # half == 0 (every joint at one point) gives inf * 0 = NaN: caught by isfinite below
    scale = 0.5 * CANONICAL_BOX_FILL * reference / half
    canon = (pose - 0.5 * (lo + hi)) * scale + 0.5 * reference
    usable = vis.sum(dim=-1) >= min_visible
    usable &= torch.where(vis[..., None], canon, 0.0).isfinite().all(dim=-1).all(dim=-1)
    vis = vis & usable[:, None]
    return torch.where(vis[..., None], canon, torch.full_like(canon, 0.5 * reference)), vis


def _lift_frames(
    net: UniHPR | TemporalLifter,
    pose2d: Tensor,
    visible: Tensor,
    batch_size: int,
    progress: bool = False,
) -> Tensor:
    """Keypoints (T, 15, 2) + visible (T, 15) -> root-relative (T, 15, 3) float32.

    The one place a model runs. A temporal lifter sees the sequence as one video
    and infers frames without a visible joint from their neighbours; the
    single-frame model lifts each frame that has a visible joint on its own
    (frames without one come back NaN).
    """
    from unihpr.models.temporal import TemporalLifter, lift_frames

    if isinstance(net, TemporalLifter):
        return lift_frames(net, pose2d, visible)
    out = torch.full((*pose2d.shape[:2], 3), math.nan, device=pose2d.device)
    rows = visible.any(dim=-1).nonzero().flatten()
    p, m = pose2d[rows], visible[rows]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=rows.numel(), unit="frame", desc="lift", file=sys.stderr)
    for i in range(0, rows.numel(), batch_size):
        pb, mb = p[i : i + batch_size], m[i : i + batch_size]
        box = bbox_from_keypoints(pb, mb)
        out[rows[i : i + batch_size]] = net.estimate_3d(pose2d=pb, bbox=box, mask=mb).float()
        if bar is not None:
            bar.update(pb.shape[0])
    if bar is not None:
        bar.close()
    return out - out[:, HUMANOID15.root : HUMANOID15.root + 1]


def _fill_gaps(pose3d: Tensor, lifted: Tensor) -> Tensor:
    """Frames not ``lifted`` (T,) interpolated in time between the nearest lifted ones.

    Linear between the lifted frames before and after a gap, the nearest one
    held before the first and after the last; NaN when no frame is lifted.
    Vectorised: no Python loop over frames.
    """
    t = lifted.shape[0]
    if t == 0 or bool(lifted.all()) or not bool(lifted.any()):
        return pose3d
    idx = torch.arange(t, device=pose3d.device)
    prev = torch.where(lifted, idx, -1).cummax(dim=0).values
    nxt = torch.where(lifted, idx, t).flip(0).cummin(dim=0).values.flip(0)
    prev, nxt = torch.where(prev < 0, nxt, prev), torch.where(nxt >= t, prev, nxt)
    w = (idx - prev).to(pose3d.dtype) / (nxt - prev).clamp_min(1).to(pose3d.dtype)
    filled = torch.lerp(pose3d[prev], pose3d[nxt], w[:, None, None])
    return torch.where(lifted[:, None, None], pose3d, filled)


def lift(
    keypoints: np.ndarray | Tensor,
    layout: str,
    confidence: np.ndarray | Tensor | None = None,
    model: str | os.PathLike | UniHPR | TemporalLifter = DEFAULT_LIFT_MODEL,
    *,
    confidence_threshold: float = 0.3,
    min_visible: int = 4,
    fill: str = "interpolate",
    return_valid: bool = False,
    device: str | torch.device | None = None,
    batch_size: int = 1024,
    progress: bool = False,
) -> np.ndarray | Tensor | tuple[np.ndarray | Tensor, np.ndarray | Tensor]:
    """Lift 2D keypoints in pixels of any image or video to root-relative 3D poses in metres.

    The keypoints are converted to [`HUMANOID15`][unihpr.data.skeletons.HUMANOID15]
    (see [`to_humanoid15`][unihpr.inference.to_humanoid15] and the layouts table
    of the lifting guide), unreliable joints are masked, and the model lifts
    them from their own box: where the person stands in the image and how large
    the image is do not change the result.

    Bad frames and joints never raise, and the output always has one row per
    input frame:

    - A keypoint is *masked* (not trusted, inferred by the model) when its
      confidence is below ``confidence_threshold`` or NaN, or when either of its
      coordinates is NaN or infinite (detectors write NaN for missed joints).
    - A frame is *lifted* when at least ``min_visible`` humanoid joints are
      visible and their box has a finite, non-zero extent.
    - Every other frame (no person detected, too few joints, all joints at one
      point) is *filled* (``fill="interpolate"``). The default, temporal model
      sees a (T, J, 2) input as one video and infers such frames from their
      neighbours in its 27-frame window; with a single-frame (UniHPR) model, the
      3D poses of the nearest lifted frames before and after it are interpolated
      linearly in time (before the first and after the last lifted frame the
      nearest one is held). With ``fill="nan"``, or when no frame of the input
      is lifted, such frames are NaN.
    - ``return_valid=True`` also returns which frames were lifted.

    Args:
        keypoints: (J, 2) for one frame or (T, J, 2) for a sequence, pixels of
            any image (x right, y down), numpy array or tensor of real numbers
            (not bool); J is the layout's joint count (33, 17, 17, 15).
        layout: One of [`LIFT_LAYOUTS`][unihpr.inference.LIFT_LAYOUTS]:
            ``"mediapipe33"``, ``"coco17"``, ``"h36m17"``, ``"humanoid15"``.
        confidence: Optional per-keypoint scores, (J,) or (T, J): MediaPipe's
            ``visibility``, a detector's keypoint scores, or a bool mask. A
            humanoid joint made of several keypoints is masked when any of them is.
        model: [`DEFAULT_LIFT_MODEL`][unihpr.inference.DEFAULT_LIFT_MODEL] (a
            temporal lifter: pass the frames of one video, in order), a registered
            UniHPR name such as ``"unihpr-tiny-mocap"`` (single-frame: frames are
            lifted independently, e.g. unrelated images), a folder written by
            ``save_pretrained`` (loaded once per device and cached; see
            [`clear_model_cache`][unihpr.inference.clear_model_cache]), or a loaded
            [`UniHPR`][unihpr.models.UniHPR] or
            [`TemporalLifter`][unihpr.models.temporal.TemporalLifter] whose
            skeleton is HUMANOID15.
        confidence_threshold: Lowest confidence of a visible keypoint.
        min_visible: Fewest visible humanoid joints a frame needs to be lifted
            (2 to 15); frames with fewer are filled.
        fill: ``"interpolate"`` (default) or ``"nan"``: what frames that are not
            lifted hold.
        return_valid: Also return ``valid``, True for the frames lifted from
            their own keypoints.
        device: Where to run (``"cpu"``, ``"cuda:0"``, ...); default: the model's
            device. A loaded model on another device is copied there for the call
            and left where it is; a named model is cached once per device.
        batch_size: Frames per forward pass.
        progress: Show a progress bar (tqdm, on stderr) while lifting.

    Returns:
        ``pose3d``: (15, 3) or (T, 15, 3) root-relative joints in metres in the
        camera frame (x right, y down, z away from the camera), in the order of
        ``HUMANOID15.joint_names``; a numpy array for numpy input, else a tensor
        on the input's device, in the input's float dtype (float32 for integers).
        With ``return_valid=True``, ``(pose3d, valid)`` with ``valid`` () or (T,)
        bool of the same kind: ``valid`` False and finite = filled, NaN = nothing
        to fill from. A regression decoder makes each lifted frame independent of
        the others; a diffusion decoder draws its noise per batch of frames.

    Raises:
        ValueError: Unknown layout (listing the valid ones), wrong shapes (naming
            the layout's J), a confidence of the wrong shape, an argument out of
            range, a device this machine lacks (or ``"meta"``), or a model of
            another skeleton.
        TypeError: Inputs that are not numpy arrays or tensors of real numbers
            (bool keypoints included), or arguments of the wrong type.
        unihpr.models.PretrainedNotFoundError: ``model`` names no loadable weights.

    Examples:
        >>> import numpy as np, unihpr
        >>> data = np.load("landmarks.npz")  # doctest: +SKIP
        >>> pose3d, valid = unihpr.lift(data["keypoints"], "mediapipe33",
        ...                             data["confidence"], return_valid=True)  # doctest: +SKIP
        >>> pose3d.shape, int((~valid).sum())  # every frame; 8 of them filled  # doctest: +SKIP
        ((230, 15, 3), 8)
    """
    min_visible = check_int("min_visible", min_visible, low=2, high=HUMANOID15.num_joints)
    batch_size = check_int("batch_size", batch_size, low=1)
    fill = check_choice("fill", fill, FILL_MODES)
    return_valid = check_bool("return_valid", return_valid)
    progress = check_bool("progress", progress)
    kp, pose, vis = _convert(keypoints, layout, confidence, confidence_threshold)
    net = _resolve_model(model, device)
    params = next(net.parameters())
    temporal = not hasattr(net.config, "bbox_reference")
    canon, vis = _canonical(pose, vis, getattr(net.config, "bbox_reference", 1.0), min_visible)
    if temporal:  # it scales each window by its median box: the pixels as given
        canon = torch.where(vis[..., None], pose, torch.zeros_like(pose))
    canon, vis = canon.to(params.device, params.dtype), vis.to(params.device)
    was_training = net.training
    if was_training:  # eval() walks every module: skip it when there is nothing to switch
        net.eval()
    try:
        with torch.no_grad():
            out = _lift_frames(net, canon, vis, batch_size, progress)
    finally:
        if was_training:
            net.train()
    valid = vis.any(dim=-1) & out.isfinite().all(dim=-1).all(dim=-1)
    if temporal and (fill == "nan" or not bool(valid.any())):
        out = torch.where(valid[:, None, None], out, torch.full_like(out, math.nan))
    elif fill == "interpolate":
        out = _fill_gaps(out, valid)
    if kp.ndim == 2:
        out, valid = out[0], valid[0]
    out = _output(out, keypoints, kp)
    if not return_valid:
        return out
    return out, (valid.cpu().numpy() if isinstance(keypoints, np.ndarray) else valid.to(kp.device))
