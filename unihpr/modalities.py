"""The names of the three representations UniHPR embeds, written once.

A batch (a dict from ``unihpr.data``) holds each modality under its own name:
``"image"`` (B, 3, H, W), ``"pose2d"`` (B, J, 2) pixels and ``"pose3d"``
(B, J, 3) metres, with the optional ``"bbox"`` (B, 4) and ``"mask"`` (B, J)
used by the pose encoders. The order is the one of the paper's triplet
(image, 2D, 3D) and of the decoders' representation tokens.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MODALITIES", "check_modalities"]

MODALITIES: tuple[str, str, str] = ("image", "pose2d", "pose3d")
"""The modality names, in the order of the triplet and of the representation tokens."""


def check_modalities(
    modalities: Iterable[str], name: str = "modalities", min_count: int = 1
) -> tuple[str, ...]:
    """Validate a collection of distinct modality names and return it as a tuple.

    Args:
        modalities: Names among [`MODALITIES`][MODALITIES].
        name: Argument name for the error message.
        min_count: Fewest names accepted.

    Returns:
        The names as a tuple, in the order given.

    Raises:
        TypeError: ``modalities`` is a string or not iterable.
        ValueError: An unknown or repeated name, or fewer than ``min_count``.
    """
    if isinstance(modalities, str) or not isinstance(modalities, Iterable):
        raise TypeError(f"{name} must be a sequence of names from {MODALITIES}, got {modalities!r}")
    out = tuple(modalities)
    bad = [m for m in out if m not in MODALITIES]
    if bad or len(set(out)) != len(out) or len(out) < min_count:
        raise ValueError(
            f"{name} must be at least {min_count} distinct name(s) of {MODALITIES}, got {out}"
        )
    return out
