"""Input validation shared by the losses: fail early with the argument's name."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def normalize_embeddings(name: str, x: Tensor, *, owner: str) -> Tensor:
    """Validate one ``(B, D)`` embedding set and return it L2-normalised.

    The row norms needed for the normalisation also reveal NaN/inf entries and
    zero rows, so validation costs no extra pass over the data.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` is not 2-D, has fewer than two rows, or has a row
            that is zero, NaN or infinite.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{owner}: {name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"{owner}: {name} must have shape (B, D), got {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise ValueError(
            f"{owner}: {name} needs a batch of at least 2 (one positive, one negative), "
            f"got shape {tuple(x.shape)}"
        )
    norms = torch.linalg.vector_norm(x.detach(), dim=1)
    bad = ~torch.isfinite(norms) | (norms == 0)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        what = "zero-norm" if bool(norms[row] == 0) else "NaN or infinite"
        raise ValueError(
            f"{owner}: {name} has a {what} row (row {row} of shape {tuple(x.shape)}); "
            "embeddings must be finite and non-zero"
        )
    return F.normalize(x, dim=1)


def check_same_shape(owner: str, **named: Tensor) -> None:
    """Require all given ``(B, D)`` tensors to share one shape."""
    items = list(named.items())
    ref_name, ref = items[0]
    for name, t in items[1:]:
        if t.shape != ref.shape:
            raise ValueError(
                f"{owner}: {name} has shape {tuple(t.shape)} but {ref_name} has "
                f"{tuple(ref.shape)}; all embedding sets need the same (B, D)"
            )
