"""Argument checks shared by the public entry points of ``unihpr.models``.

Each helper raises early with a message naming the argument and what was
received, so a wrong layout fails at the API boundary, not deep in a matmul.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unihpr.modalities import MODALITIES


def check_tensor(name: str, value: object) -> Tensor:
    """Raise ``TypeError`` unless ``value`` is a tensor."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_float(name: str, value: object) -> Tensor:
    """Raise ``TypeError`` unless ``value`` is a floating-point tensor."""
    value = check_tensor(name, value)
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    return value


def check_shape(name: str, value: Tensor, shape: tuple[int | None, ...], layout: str) -> None:
    """Raise ``ValueError`` unless ``value.shape`` matches ``shape`` (``None`` = any size).

    Args:
        name: Argument name for the message.
        value: Tensor to check.
        shape: Expected sizes; ``None`` matches anything.
        layout: Human-readable layout, e.g. ``"(B, J, 2)"``.
    """
    ok = value.ndim == len(shape) and all(s is None or s == v for s, v in zip(shape, value.shape))
    if not ok:
        want = ", ".join("*" if s is None else str(s) for s in shape)
        raise ValueError(f"{name} must have shape {layout} = ({want}), got {tuple(value.shape)}")


def check_pose(name: str, pose: object, num_joints: int, dims: int) -> Tensor:
    """Check a batch of poses (B, J, dims) of floats."""
    pose = check_float(name, pose)
    check_shape(name, pose, (None, num_joints, dims), f"(B, J={num_joints}, {dims})")
    if pose.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one pose, got shape {tuple(pose.shape)}")
    return pose


def check_mask(mask: object, batch: int, num_joints: int, name: str = "mask") -> Tensor | None:
    """Check an optional joint-visibility mask (B, J) of bools; ``None`` passes through."""
    if mask is None:
        return None
    mask = check_tensor(name, mask)
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor (True = visible), got dtype {mask.dtype}")
    check_shape(name, mask, (batch, num_joints), f"(B={batch}, J={num_joints})")
    return mask


def check_bbox(
    bbox: object, batch: int, name: str = "bbox", *, values: bool = True
) -> Tensor | None:
    """Check optional boxes (B, 4) as x0, y0, x1, y1 with x1 >= x0 and y1 >= y0.

    ``values=False`` checks only the type and shape (no host read of the values).
    """
    if bbox is None:
        return None
    bbox = check_float(name, bbox)
    check_shape(name, bbox, (batch, 4), f"(B={batch}, 4) as x0, y0, x1, y1")
    if not values:
        return bbox
    if not bool(torch.isfinite(bbox).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    if bool(((bbox[:, 2] < bbox[:, 0]) | (bbox[:, 3] < bbox[:, 1])).any()):
        raise ValueError(f"{name} must be ordered x0, y0, x1, y1 with x1 >= x0 and y1 >= y0")
    return bbox


def check_source(source: object) -> str:
    """Check a representation name."""
    if source not in MODALITIES:
        raise ValueError(f"source must be one of {MODALITIES}, got {source!r}")
    return source  # type: ignore[return-value]


def check_embedding(name: str, embedding: object, dim: int) -> Tensor:
    """Check embeddings (B, D) of floats."""
    embedding = check_float(name, embedding)
    check_shape(name, embedding, (None, dim), f"(B, D={dim})")
    return embedding
