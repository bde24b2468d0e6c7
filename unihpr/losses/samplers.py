"""Negative samplers for the Triplet-InfoNCE and its K-modality generalisation.

A sampler only produces indices; the loss evaluates them and never asks which
sampler made them. This keeps the two composable, as losses and miners are in
pytorch-metric-learning. One sampler object serves both
[`TripletInfoNCE`][unihpr.losses.TripletInfoNCE] (three modalities, called as
``sampler(B, N)``) and [`MultimodalInfoNCE`][unihpr.losses.MultimodalInfoNCE]
(K modalities, ``sampler.tuples(B, K, N)``).

A tuple (t_1, …, t_K) names the embedding of sample t_m in modality m; for
three modalities (i, j, k) = (image, 2D pose, 3D pose). For anchor a the
paper's candidate negatives are the tuples that share at least one embedding
with the positive (a, …, a): B^K − (B − 1)^K − 1 of them, 3B² − 3B for K = 3.
Every sampler returns, per anchor, candidates that never equal the positive.

With ``labels`` (one integer per sample; samples that share one are the same
thing, e.g. one frame seen by several cameras) a candidate whose K samples all
carry the anchor's label is another positive, not a negative. The samplers
then redraw such candidates, up to [`LABEL_REDRAWS`][unihpr.losses.samplers.LABEL_REDRAWS]
times, a fixed number so that the GPU never waits for the host; one still
left after that (only likely when most of the batch shares the anchor's label)
is scored by the losses as a positive, never as a negative.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, NamedTuple

import torch
from torch import Tensor

from unihpr._validate import (
    check_choice,
    check_device,
    check_generator,
    check_index,
    check_int,
    check_labels,
    check_rows,
)

__all__ = [
    "LABEL_REDRAWS",
    "MAX_CANDIDATES",
    "MAX_NEGATIVES",
    "SAMPLERS",
    "ShuffleTripletSampler",
    "SwapOneTripletSampler",
    "TripletIndices",
    "TripletSampler",
    "UniformTripletSampler",
    "make_sampler",
]


LABEL_REDRAWS = 8
"""How many times the samplers redraw a candidate that shares the anchor's label."""
MAX_NEGATIVES = 1 << 20
"""The most negatives per anchor a sampler draws (sampling more than 2²⁰ with
replacement is a job for the exact mode, ``negatives="all"``)."""
MAX_CANDIDATES = 1 << 28
"""The most candidates (anchors × negatives) one draw may hold: 1 GiB per int32
index tensor, and the loss keeps a dozen float tensors of that size."""


def same_label_tuples(out: tuple[Tensor, ...], anchors: Tensor, labels: Tensor) -> Tensor:
    """``(A, N)`` bool: the candidate's K samples all carry the anchor's label."""
    own = labels[anchors.long()][:, None]
    same = torch.ones_like(out[0], dtype=torch.bool)
    for t in out:
        same &= labels[t.long()] == own
    return same


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


def _randint(
    high: int, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> Tensor:
    # Draw on the generator's device so that a given generator always gives
    # the same numbers, then move without blocking the host.
    gen_device = generator.device if generator is not None else device
    dtype = torch.int32 if high < 2**31 else torch.int64
    out = torch.randint(high, shape, generator=generator, device=gen_device, dtype=dtype)
    return out.to(device, non_blocking=True)


def _skip(x: Tensor, a: Tensor) -> Tensor:
    """Map x in [0, B−1) to [0, B) \\ {a}."""
    return x + (x >= a).to(x.dtype)


class TripletSampler(ABC):
    """Base class of the negative samplers.

    ``sampler(batch_size, num_negatives)`` returns [`TripletIndices`][] for
    three modalities; ``sampler.tuples(batch_size, num_modalities,
    num_negatives)`` the K index tensors of K-modality tuples. Subclasses
    implement [`sample`][unihpr.losses.samplers.TripletSampler.sample]. Sampling is deterministic given a
    ``torch.Generator``.
    """

    def __call__(
        self, batch_size: int, num_negatives: int | None = None, **options: Any
    ) -> TripletIndices:
        """Sample negative triplets (three modalities): [`tuples`][unihpr.losses.samplers.TripletSampler.tuples] with K = 3.

        Args:
            batch_size: B, the number of samples each index may refer to.
            num_negatives: N negatives per anchor; default B − 1 (the paper).
            **options: ``anchors``, ``generator``, ``device``, ``dtype`` and
                ``labels``, as for ``tuples``.

        Returns:
            [`TripletIndices`][] of ``(A, N)`` integer tensors.
        """
        return TripletIndices(*self.tuples(batch_size, 3, num_negatives, **options))

    def tuples(
        self,
        batch_size: int,
        num_modalities: int,
        num_negatives: int | None = None,
        *,
        anchors: Tensor | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.int64,
        labels: Tensor | None = None,
    ) -> tuple[Tensor, ...]:
        """Sample negative K-modality tuples.

        Args:
            batch_size: B.
            num_modalities: K ≥ 2.
            num_negatives: N per anchor; default B − 1; at most
                [`MAX_NEGATIVES`][unihpr.losses.samplers.MAX_NEGATIVES], and
                A × N at most [`MAX_CANDIDATES`][unihpr.losses.samplers.MAX_CANDIDATES].
            anchors: ``(A,)`` anchor rows, at least one; default all B rows.
                Their range is checked (which reads them on the host).
            generator: Source of randomness.
            device: Device of the returned indices.
            dtype: ``torch.int64`` or ``torch.int32``.
            labels: ``(B,)`` integer labels on ``device``; a candidate whose
                samples all share the anchor's label is redrawn, up to
                [`LABEL_REDRAWS`][unihpr.losses.samplers.LABEL_REDRAWS] times.

        Returns:
            K tensors of shape ``(A, N)``: entry m of tuple (r, n) is
            ``out[m][r, n]``.

        Raises:
            TypeError: An argument of the wrong type.
            ValueError: Bad sizes, anchors, device or dtype, or more
                candidates than the caps.
        """
        owner = type(self).__name__
        check_int("batch_size", batch_size, low=2, owner=owner)
        check_int("num_modalities", num_modalities, low=2, owner=owner)
        n = batch_size - 1 if num_negatives is None else num_negatives
        check_int("num_negatives", n, low=1, high=MAX_NEGATIVES, owner=owner)
        if dtype not in (torch.int32, torch.int64):
            raise ValueError(f"{owner}: dtype must be torch.int32 or torch.int64, got {dtype}")
        check_generator(generator, owner=owner)
        if device is not None:
            device = check_device("device", device, owner=owner)
        if anchors is not None:
            check_index("anchors", anchors, dim=1, owner=owner)
            device = device if device is not None else anchors.device
            anchors = anchors.to(device)
        device = device if device is not None else torch.device("cpu")
        anchors = check_rows(
            "anchors", anchors, batch_size, device=device, validate=True, owner=owner
        )
        if anchors.numel() * n > MAX_CANDIDATES:
            raise ValueError(
                f"{owner}: {anchors.numel()} anchors x {n} negatives = {anchors.numel() * n} "
                f"candidates, more than MAX_CANDIDATES = 2**28; draw fewer negatives"
            )
        self.check_modalities(num_modalities)
        if labels is not None:
            labels = check_labels(labels, batch_size, device, owner=owner)
        out = self.sample(batch_size, num_modalities, n, anchors, generator, device)
        if labels is not None:
            for _ in range(LABEL_REDRAWS):
                same = same_label_tuples(out, anchors, labels)
                new = self.sample(batch_size, num_modalities, n, anchors, generator, device)
                out = tuple(torch.where(same, b, a) for a, b in zip(out, new))
        return tuple(t.to(dtype) for t in out)

    def check_modalities(self, num_modalities: int) -> None:  # noqa: B027 (optional hook)
        """Raise ``ValueError`` if this sampler cannot serve ``num_modalities``."""

    def for_anchor_modality(self, modality: int) -> TripletSampler:
        """This sampler restricted to candidates that keep the anchor in ``modality``.

        Used by the Symile-style average over anchor modalities
        (``TripletInfoNCE(anchor_modalities="each")``): one cross-entropy per
        modality m, its negatives (a in modality m, any other samples in the
        others) drawn by ``sampler.for_anchor_modality(m)``.

        Raises:
            ValueError: This sampler has no such form.
        """
        raise ValueError(
            f"{type(self).__name__} has no per-anchor-modality form; use "
            "UniformTripletSampler or ShuffleTripletSampler"
        )

    @abstractmethod
    def sample(
        self,
        batch_size: int,
        num_modalities: int,
        num_negatives: int,
        anchors: Tensor,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> tuple[Tensor, ...]:
        """Draw negatives for validated arguments.

        Args:
            batch_size: B ≥ 2.
            num_modalities: K ≥ 2.
            num_negatives: N ≥ 1.
            anchors: ``(A,)`` int64 anchor rows in [0, B), on ``device``.
            generator: Source of randomness, or None.
            device: Device of the result.

        Returns:
            K integer tensors of shape ``(A, N)``.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _AnchorModalitySampler(TripletSampler):
    """A sampler that may keep the anchor's embedding in one fixed modality."""

    def __init__(self, anchor_modality: int | None = None) -> None:
        if anchor_modality is not None:
            check_int("anchor_modality", anchor_modality, low=0, owner=type(self).__name__)
        self.anchor_modality = anchor_modality

    def check_modalities(self, num_modalities: int) -> None:
        if self.anchor_modality is not None and self.anchor_modality >= num_modalities:
            raise ValueError(
                f"{type(self).__name__}: anchor_modality={self.anchor_modality} needs more "
                f"than {num_modalities} modalities"
            )

    def for_anchor_modality(self, modality: int) -> TripletSampler:
        return type(self)(modality)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(anchor_modality={self.anchor_modality})"


class UniformTripletSampler(_AnchorModalitySampler):
    """Uniform draws (with replacement) from all candidate negatives.

    The candidates of anchor a are split into K disjoint planes by the first
    modality m whose index equals a: the modalities before m take the B − 1
    other samples, those after m any of the B, so plane m holds
    (B − 1)^m B^(K−1−m) tuples, and plane 0 also holds the positive, which is
    skipped. One integer drawn uniformly below B^K − (B − 1)^K − 1 is decoded
    into a tuple, so every candidate has the same probability and no draw is
    ever rejected. For K = 3 the planes are {(a, j, k)} (B² − 1 negatives),
    {(i, a, k): i ≠ a} (B² − B) and {(i, j, a): i ≠ a, j ≠ a} ((B − 1)²).
    Duplicates are possible but rare (N ≪ 3B²).

    Args:
        anchor_modality: None (default) for all candidates; a modality m < K
            for only those that keep the anchor's own embedding in modality
            m, the other modalities free: B^(K−1) − 1 candidates, Symile's
            per-anchor-modality negatives.
    """

    def check_modalities(self, num_modalities: int) -> None:
        if num_modalities > 62:
            raise ValueError(
                f"UniformTripletSampler: {num_modalities} modalities overflow int64 draws"
            )
        super().check_modalities(num_modalities)

    def sample(self, batch_size, num_modalities, num_negatives, anchors, generator, device):
        B, K = batch_size, num_modalities
        m = self.anchor_modality
        if m is not None:
            if B ** (K - 1) >= 2**62:
                raise ValueError(
                    f"UniformTripletSampler: B^(K-1) = {B}^{K - 1} candidates overflow int64 draws"
                )
            # Plane 0 of the decoding (the anchor first, the rest free), moved to slot m.
            u = _randint(B ** (K - 1) - 1, (anchors.numel(), num_negatives), generator, device)
            first, *rest = self.decode(u, anchors, B, K)
            return (*rest[:m], first, *rest[m:])
        total = B**K - (B - 1) ** K - 1
        if B**K >= 2**62:
            raise ValueError(
                f"UniformTripletSampler: B^K = {B}^{K} candidates overflow int64 draws; "
                "use fewer modalities or SwapOneTripletSampler"
            )
        u = _randint(total, (anchors.numel(), num_negatives), generator, device)
        return self.decode(u, anchors, B, K)

    @staticmethod
    def decode(
        u: Tensor, anchors: Tensor, batch_size: int, num_modalities: int = 3
    ) -> tuple[Tensor, ...]:
        """Map ``(A, N)`` integers below B^K − (B − 1)^K − 1 to candidate tuples.

        Args:
            u: ``(A, N)`` draws.
            anchors: ``(A,)`` anchor rows.
            batch_size: B.
            num_modalities: K.

        Returns:
            K ``(A, N)`` tensors of ``u``'s dtype (int64 where B^K needs it).
        """
        B, K = batch_size, num_modalities
        # int32 arithmetic is several times faster than int64 for the divisions.
        dtype = torch.int64 if B**K >= 2**31 else torch.int32
        u = u.to(dtype)
        a = anchors.to(device=u.device, dtype=dtype)[:, None]
        # Skip the positive, at offset a·(B^(K−1) − 1)/(B − 1) of plane 0.
        u = u + (u >= a * ((B ** (K - 1) - 1) // (B - 1))).to(dtype)
        starts = [0]
        for m in range(K - 1):
            starts.append(starts[-1] + (B - 1) ** m * B ** (K - 1 - m))
        plane = torch.zeros_like(u)
        local = u.clone()
        for m in range(1, K):
            inside = u >= starts[m]
            plane += inside.to(dtype)
            local = torch.where(inside, u - starts[m], local)
        out = [None] * K
        for t in range(K - 1, -1, -1):
            before, at = t < plane, t == plane
            radix = torch.where(before, B - 1, torch.where(at, 1, B)).to(dtype)
            digit = local.remainder(radix)
            local = local.div(radix, rounding_mode="floor")
            out[t] = torch.where(before, _skip(digit, a), torch.where(at, a.expand_as(u), digit))
        return tuple(out)


class SwapOneTripletSampler(TripletSampler):
    """Negatives that differ from the positive in exactly one modality.

    For anchor a: pick one modality uniformly and replace its index by a
    uniform other sample, giving (i, a, a), (a, j, a) or (a, a, k) for three
    modalities with the swapped index ≠ a: K(B − 1) candidates, drawn
    uniformly with replacement. These are the hardest negatives for the
    triplet score, since the other embeddings still match.
    """

    def sample(self, batch_size, num_modalities, num_negatives, anchors, generator, device):
        B = batch_size
        a = anchors[:, None]
        u = _randint(num_modalities * (B - 1), (anchors.numel(), num_negatives), generator, device)
        modality = u.div(B - 1, rounding_mode="floor")
        other = _skip(u.remainder(B - 1), a)
        return tuple(
            torch.where(modality == m, other, a.expand_as(u)) for m in range(num_modalities)
        )


class ShuffleTripletSampler(_AnchorModalitySampler):
    """Symile-style negatives: the non-anchor modalities shuffled independently.

    One modality keeps the anchor's own embedding; each of the others is
    indexed through its own random permutation of the batch. With B − 1
    negatives this is one permutation per modality: column n of the logits
    matrix holds the shuffled tuple, shared by all anchors, and anchor a uses
    every column but its own (where the positive goes). More negatives draw
    further permutations. A shuffled tuple that happens to recreate the
    positive has its last shuffled index moved to the next sample so that it
    stays a negative.

    Args:
        anchor_modality: Which modality keeps the anchor's embedding (0 image,
            1 2D, 2 3D for triplets; any m < K for tuples), or None to choose
            one uniformly per anchor.
    """

    def sample(self, batch_size, num_modalities, num_negatives, anchors, generator, device):
        B, K, A, N = batch_size, num_modalities, anchors.numel(), num_negatives
        rounds = -(-N // (B - 1))
        gen_device = generator.device if generator is not None else device
        perms = [
            torch.stack(
                [torch.randperm(B, generator=generator, device=gen_device) for _ in range(rounds)]
            ).to(device, non_blocking=True)
            for _ in range(K - 1)
        ]
        a = anchors[:, None]
        # columns of every round but the anchor's own: (A, rounds * (B - 1))
        cols = _skip(torch.arange(B - 1, device=device)[None, :], a).repeat(1, rounds)[:, :N]
        rnd = (torch.arange(rounds, device=device).repeat_interleave(B - 1)[:N])[None, :]
        rnd = rnd.expand(A, N)
        shuffled = [p[rnd, cols] for p in perms]
        same = torch.ones_like(shuffled[0], dtype=torch.bool)
        for s in shuffled:
            same &= s == a
        shuffled[-1] = torch.where(same, (shuffled[-1] + 1) % B, shuffled[-1])
        if self.anchor_modality is None:
            fixed = _randint(K, (A, 1), generator, device).expand(A, N)
        else:
            fixed = torch.full((A, N), self.anchor_modality, device=device)
        anchor = a.expand(A, N)
        out = []
        for m in range(K):
            # Modality m takes slot m of the shuffles before the fixed one, m − 1 after.
            value = shuffled[min(m, K - 2)]
            if m > 0:
                value = torch.where(fixed < m, shuffled[m - 1], value)
            out.append(torch.where(fixed == m, anchor, value))
        return tuple(out)


SAMPLERS: dict[str, type[TripletSampler]] = {
    "uniform": UniformTripletSampler,
    "swap-one": SwapOneTripletSampler,
    "shuffle": ShuffleTripletSampler,
}
"""Sampler classes by name (the names a [`LossConfig`][unihpr.train.LossConfig] uses)."""


def make_sampler(name: str) -> TripletSampler:
    """The sampler registered as ``name`` in [`SAMPLERS`][unihpr.losses.samplers.SAMPLERS].

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: Unknown name.
    """
    return SAMPLERS[check_choice("name", name, sorted(SAMPLERS), owner="make_sampler")]()
