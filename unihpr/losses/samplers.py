"""Negative-triplet samplers for the Triplet-InfoNCE.

A sampler only produces indices; the loss evaluates them. This keeps the two
composable, as losses and miners are in pytorch-metric-learning.

A triplet (i, j, k) names the image embedding of sample i, the 2D-pose
embedding of sample j and the 3D-pose embedding of sample k. For anchor a the
paper's candidate negatives are the 3B² − 3B triplets that share at least one
embedding with the positive (a, a, a), i.e. the triplets with i = a or j = a
or k = a, the positive excluded. Every sampler returns, per anchor, indices of
negatives that never equal the positive.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import torch
from torch import Tensor

from unihpr.ops import native


class TripletIndices(NamedTuple):
    """Indices of triplets, one row per anchor.

    Attributes:
        image: ``(A, N)`` rows of the image embeddings.
        pose2d: ``(A, N)`` rows of the 2D-pose embeddings.
        pose3d: ``(A, N)`` rows of the 3D-pose embeddings.
    """

    image: Tensor
    pose2d: Tensor
    pose3d: Tensor


def _validate(
    owner: str, batch_size: int, num_negatives: int | None, anchors: Tensor | None, device
) -> tuple[Tensor, int]:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"{owner}: batch_size must be an int >= 2, got {batch_size!r}")
    n = batch_size - 1 if num_negatives is None else num_negatives
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{owner}: num_negatives must be an int >= 1, got {num_negatives!r}")
    if anchors is None:
        anchors = torch.arange(batch_size, device=device)
    else:
        if anchors.dim() != 1 or anchors.dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"{owner}: anchors must be a 1-D int32/int64 tensor, got shape "
                f"{tuple(anchors.shape)} and dtype {anchors.dtype}"
            )
        if anchors.numel() and (int(anchors.min()) < 0 or int(anchors.max()) >= batch_size):
            raise ValueError(
                f"{owner}: anchors must lie in [0, {batch_size}), got {anchors.tolist()[:8]}"
            )
    return anchors, n


def _randint(
    high: int, shape: tuple[int, ...], generator: torch.Generator | None, device
) -> Tensor:
    # Draw on the generator's device so that a given generator always gives
    # the same numbers, then move.
    gen_device = generator.device if generator is not None else torch.device("cpu")
    dtype = torch.int32 if high < 2**31 else torch.int64
    return torch.randint(high, shape, generator=generator, device=gen_device, dtype=dtype).to(
        device
    )


def _skip(x: Tensor, a: Tensor) -> Tensor:
    """Map x in [0, B−1) to [0, B) \\ {a}."""
    return x + (x >= a).to(x.dtype)


class TripletSampler(ABC):
    """Base class: ``sampler(batch_size, num_negatives, ...) -> TripletIndices``.

    Subclasses implement [`sample`][]. Sampling is deterministic given a
    ``torch.Generator``.
    """

    def __call__(
        self,
        batch_size: int,
        num_negatives: int | None = None,
        *,
        anchors: Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.int64,
    ) -> TripletIndices:
        """Sample negatives.

        Args:
            batch_size: B, the number of samples each index may refer to.
            num_negatives: N negatives per anchor; default B − 1 (the paper).
            anchors: ``(A,)`` anchor rows; default all B rows.
            generator: Source of randomness, for reproducible draws.
            device: Device of the returned indices.
            dtype: ``torch.int64`` (default) or ``torch.int32`` (faster to
                produce and to index with; the losses use it when B² fits).

        Returns:
            [`TripletIndices`][] of ``(A, N)`` integer tensors.
        """
        anchors, n, device, dtype = self._prepare(batch_size, num_negatives, anchors, device, dtype)
        out = self.sample(batch_size, n, anchors, generator, device)
        return TripletIndices(*(t.to(dtype) for t in out))

    def _prepare(
        self, batch_size, num_negatives, anchors, device, dtype
    ) -> tuple[Tensor, int, torch.device, torch.dtype]:
        """Validated anchors (on ``device``, in the index dtype), N, device and dtype."""
        device = torch.device(device) if device is not None else torch.device("cpu")
        if dtype not in (torch.int32, torch.int64):
            raise ValueError(
                f"{type(self).__name__}: dtype must be torch.int32 or torch.int64, got {dtype}"
            )
        if dtype == torch.int32 and 3 * batch_size * batch_size >= 2**31:
            dtype = torch.int64  # int32 would overflow in the decoding
        anchors, n = _validate(type(self).__name__, batch_size, num_negatives, anchors, device)
        return anchors.to(device=device, dtype=dtype), n, device, dtype

    @abstractmethod
    def sample(
        self,
        batch_size: int,
        num_negatives: int,
        anchors: Tensor,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> TripletIndices:
        """Draw ``(A, num_negatives)`` negatives for validated arguments."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class UniformTripletSampler(TripletSampler):
    """Uniform draws (with replacement) from the paper's 3B² − 3B negatives.

    The candidate set of anchor a is split into three disjoint planes:
    {(a, j, k)} minus the positive (B² − 1 triplets), {(i, a, k): i ≠ a}
    (B² − B) and {(i, j, a): i ≠ a, j ≠ a} ((B − 1)²). One integer drawn
    uniformly below 3B² − 3B is decoded into a triplet, so every candidate has
    the same probability. Duplicates are possible but rare (N ≪ 3B²).
    """

    def sample(self, batch_size, num_negatives, anchors, generator, device):
        u = self._draw(batch_size, num_negatives, anchors, generator, device)
        if native.usable(u, anchors):
            return TripletIndices(*native.uniform_decode(u, anchors, batch_size))
        return self.decode(u, anchors, batch_size)

    @staticmethod
    def _draw(batch_size, num_negatives, anchors, generator, device) -> Tensor:
        B = batch_size
        u = _randint(3 * B * B - 3 * B, (anchors.numel(), num_negatives), generator, device)
        return u.to(anchors.dtype)

    def draw(
        self,
        batch_size: int,
        num_negatives: int | None = None,
        *,
        anchors: Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.int64,
    ) -> tuple[Tensor, Tensor]:
        """The draws behind `__call__`, not yet decoded into triplets.

        Same arguments as `__call__`, and the same generator use:
        ``decode(*draw(...), batch_size)`` equals ``sampler(...)``. The loss
        uses this to let its native kernel decode on the fly instead of
        materialising three ``(A, N)`` index tensors.

        Returns:
            ``(u, anchors)``: ``(A, N)`` integers below 3B² − 3B and the
            validated ``(A,)`` anchors, both of the index dtype.
        """
        anchors, n, device, _ = self._prepare(batch_size, num_negatives, anchors, device, dtype)
        return self._draw(batch_size, n, anchors, generator, device), anchors

    @staticmethod
    def decode(u: Tensor, anchors: Tensor, batch_size: int) -> TripletIndices:
        """Map ``(A, N)`` draws below 3B² − 3B to triplets, in PyTorch ops.

        Args:
            u: ``(A, N)`` draws, as returned by [`draw`][].
            anchors: ``(A,)`` anchor rows, of ``u``'s dtype.
            batch_size: B.

        Returns:
            [`TripletIndices`][] of ``(A, N)`` tensors of ``u``'s dtype.

        The native CPU kernel computes the same map; this is the path for
        other devices and the reference for the tests.
        """
        B = batch_size
        # Works in the anchors' dtype: int32 arithmetic is several times faster
        # than int64 for the B² divisions below.
        a = anchors[:, None]
        u = u.clone()
        # Skip the positive, which sits at offset a·B + a of plane 1.
        u += u >= a * (B + 1)
        # Planes 1 and 2 both have rows of length B: u = q·B + r.
        q = u.div(B, rounding_mode="floor")
        r = u - q * B
        in1 = q < B  # plane 1: (a, q, r)
        q2 = q - B  # plane 2: (skip(q2), a, r)
        q2 += q2 >= a
        # plane 3: (skip(u3 // (B-1)), skip(u3 % (B-1)), a)
        in3 = u >= 2 * B * B - B
        u3 = (u - (2 * B * B - B)).clamp_min_(0)
        q3 = u3.div(B - 1, rounding_mode="floor")
        r3 = u3 - q3 * (B - 1)
        q3 += q3 >= a
        r3 += r3 >= a
        ab = a.expand_as(u)
        image = torch.where(in3, q3, torch.where(in1, ab, q2))
        pose2d = torch.where(in3, r3, torch.where(in1, q, ab))
        pose3d = torch.where(in3, ab, r)
        return TripletIndices(image, pose2d, pose3d)


class SwapOneTripletSampler(TripletSampler):
    """Negatives that differ from the positive in exactly one modality.

    For anchor a: pick one modality uniformly and replace its index by a
    uniform other sample, giving (i, a, a), (a, j, a) or (a, a, k) with the
    swapped index ≠ a: 3(B − 1) candidates, drawn uniformly with replacement.
    These are the hardest negatives for the triplet score, since two of the
    three embeddings still match.
    """

    def sample(self, batch_size, num_negatives, anchors, generator, device):
        B = batch_size
        a = anchors[:, None]
        u = _randint(3 * (B - 1), (anchors.numel(), num_negatives), generator, device)
        modality = u.div(B - 1, rounding_mode="floor")
        other = _skip(u.remainder(B - 1), a)
        out = [torch.where(modality == m, other, a.expand_as(u)) for m in range(3)]
        return TripletIndices(*out)


class ShuffleTripletSampler(TripletSampler):
    """Symile-style negatives: the non-anchor modalities shuffled independently.

    One modality keeps the anchor's own embedding; each of the other two is
    indexed through its own random permutation of the batch. With B − 1
    negatives this is one permutation per modality: column n of the logits
    matrix holds the shuffled pair (σ(n), π(n)), shared by all anchors, and
    anchor a uses every column but its own (where the positive goes). More
    negatives draw further permutations. A shuffled pair that happens to
    recreate the positive is moved to the next 3D sample so that it stays a
    negative.

    Args:
        anchor_modality: Which modality keeps the anchor's embedding: 0
            (image), 1 (2D), 2 (3D), or None to choose one uniformly per
            anchor.
    """

    def __init__(self, anchor_modality: int | None = None) -> None:
        if anchor_modality not in (None, 0, 1, 2):
            raise ValueError(
                f"ShuffleTripletSampler: anchor_modality must be 0, 1, 2 or None, got {anchor_modality!r}"
            )
        self.anchor_modality = anchor_modality

    def sample(self, batch_size, num_negatives, anchors, generator, device):
        B, A, N = batch_size, anchors.numel(), num_negatives
        rounds = -(-N // (B - 1))
        gen_device = generator.device if generator is not None else torch.device("cpu")
        perms = [
            torch.stack(
                [torch.randperm(B, generator=generator, device=gen_device) for _ in range(rounds)]
            ).to(device)
            for _ in range(2)
        ]
        a = anchors[:, None]
        # columns of every round but the anchor's own: (A, rounds * (B - 1))
        cols = _skip(torch.arange(B - 1, device=device)[None, :], a).repeat(1, rounds)[:, :N]
        rnd = (torch.arange(rounds, device=device).repeat_interleave(B - 1)[:N])[None, :]
        rnd = rnd.expand(A, N)
        first, second = perms[0][rnd, cols], perms[1][rnd, cols]
        second = torch.where((first == a) & (second == a), (second + 1) % B, second)
        if self.anchor_modality is None:
            fixed = _randint(3, (A, 1), generator, device).expand(A, N)
        else:
            fixed = torch.full((A, N), self.anchor_modality, device=device)
        anchor = a.expand(A, N)
        image = torch.where(fixed == 0, anchor, first)
        pose2d = torch.where(fixed == 1, anchor, torch.where(fixed == 0, first, second))
        pose3d = torch.where(fixed == 2, anchor, second)
        return TripletIndices(image, pose2d, pose3d)

    def __repr__(self) -> str:
        return f"ShuffleTripletSampler(anchor_modality={self.anchor_modality})"
