"""SigLIP's sigmoid pair loss (Zhai et al., 2023), as open_clip's ``SigLipLoss``.

Every pair (i, j) of the batch is an independent binary classification, so
no softmax over the batch is needed:

    L = −(1/B) Σ_i Σ_j log σ(z_ij (s_ij / τ + b)),  z_ij = +1 if i = j else −1,

with s_ij the cosine of the L2-normalised x_i and y_j, τ the temperature
(open_clip's ``logit_scale = 1/τ``) and b the bias (``logit_bias``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihpr._validate import (
    check_labels,
    check_real,
    check_rows,
    check_shape,
    check_square,
    check_tau,
    check_tensor,
)
from unihpr.losses._preamble import EmbeddingLoss
from unihpr.losses.temperature import LearnableTemperature

__all__ = ["SigLIPLoss", "siglip_loss"]


def _signs(rows: Tensor, batch: int, labels: Tensor | None, dtype: torch.dtype) -> Tensor:
    """``(A, B)`` z: +1 for the anchors' positives, −1 for everything else."""
    if labels is None:
        same = rows[:, None] == torch.arange(batch, device=rows.device)[None, :]
    else:
        same = labels[rows][:, None] == labels[None, :]
    return same.to(dtype) * 2 - 1


def _siglip(
    logits_rows: Tensor, rows: Tensor, tau: Tensor, bias: Tensor, labels: Tensor | None
) -> Tensor:
    """The loss of anchors ``rows`` from their ``(A, B)`` cosines."""
    z = _signs(rows, logits_rows.shape[1], labels, logits_rows.dtype)
    return -F.logsigmoid(z * (logits_rows / tau + bias)).sum() / rows.shape[0]


def _check_bias(owner: str, bias: object) -> Tensor | float:
    """A finite float or a floating 0-dim tensor (e.g. an ``nn.Parameter``)."""
    if isinstance(bias, Tensor):
        return check_shape(
            "bias", check_tensor("bias", bias, floating=True, owner=owner), (), "()", owner=owner
        )
    return check_real("bias", bias, owner=owner)


def siglip_loss(
    similarity: Tensor,
    tau: Tensor | float,
    bias: Tensor | float,
    *,
    anchors: Tensor | None = None,
    labels: Tensor | None = None,
    validate: bool = True,
) -> Tensor:
    """SigLIP's sigmoid loss from a square ``(B, B)`` cosine matrix.

    Args:
        similarity: ``(B, B)`` cosines ``x_i · y_j``, positives on the diagonal.
        tau: Temperature τ (float or 0-dim tensor, finite, > 0); open_clip's
            ``logit_scale`` is 1/τ.
        bias: The logit bias b (float or 0-dim tensor).
        anchors: ``(A,)`` rows whose terms are summed, at least one (the
            distributed losses pass this rank's rows); default all B. The sum
            is divided by A.
        labels: ``(B,)`` integer labels: z_ij = +1 when i and j share a label.
        validate: Check the anchors' range and a tensor τ's value (a host
            synchronisation).

    Returns:
        Scalar −(1/A) Σ_{i ∈ anchors} Σ_j log σ(z_ij (s_ij/τ + b)).

    Raises:
        TypeError, ValueError: A non-square or non-floating matrix, bad τ,
            bias, anchors or labels.
    """
    owner = "siglip_loss"
    similarity = check_square("similarity", similarity, owner=owner)
    B, device = similarity.shape[0], similarity.device
    work = torch.promote_types(similarity.dtype, torch.float32)
    tau = check_tau(tau, dtype=work, device=device, validate=validate, owner=owner)
    bias = torch.as_tensor(_check_bias(owner, bias), dtype=work, device=device)
    if labels is not None:
        labels = check_labels(labels, B, device, owner=owner)
    rows = check_rows("anchors", anchors, B, device=device, validate=validate, owner=owner)
    return _siglip(similarity[rows].to(work), rows, tau, bias, labels)


class SigLIPLoss(EmbeddingLoss):
    """SigLIP's sigmoid pair loss between two ``(B, D)`` embedding sets.

    Equal to open_clip's ``SigLipLoss`` with ``logit_scale = 1/τ`` and
    ``logit_bias = bias`` (inputs L2-normalised here, as for the other
    losses): −(1/B) Σ_i Σ_j log σ(z_ij (s_ij/τ + b)) with z = +1 on the
    diagonal and −1 elsewhere. No softmax couples the batch, so the loss of
    one rank's anchors needs the other ranks' embeddings only as columns.

    Args:
        temperature: Fixed float τ or a [`LearnableTemperature`][]. SigLIP
            initialises τ = 1/10 (``logit_scale`` = 10).
        bias: The logit bias b: a float (fixed) or a 0-dim ``nn.Parameter``
            (learned; registered as this module's parameter ``bias``). SigLIP
            initialises b = −10, which keeps the B(B − 1) negatives from
            dominating the first steps.
        gather: With torch.distributed initialised and world size > 1, use
            the global batch as columns (each rank sums the terms of its own
            rows, divided by its local batch, as open_clip does); False keeps
            everything local.
        distributed: ``"local"`` (default) or ``"global"``; see [`unihpr.losses.distributed`][].
        validate: Reject zero or non-finite rows and a diverged temperature
            (a host synchronisation).

    Examples:
        >>> loss_fn = SigLIPLoss(LearnableTemperature(init=0.1), bias=nn.Parameter(torch.tensor(-10.0)))
        >>> loss = loss_fn(torch.randn(8, 32), torch.randn(8, 32))
        >>> loss.backward()
    """

    def __init__(
        self,
        temperature: float | LearnableTemperature = 0.1,
        bias: float | Tensor = -10.0,
        gather: bool = True,
        validate: bool = True,
        distributed: str = "local",
    ) -> None:
        super().__init__(temperature, gather=gather, distributed=distributed, validate=validate)
        bias = _check_bias("SigLIPLoss", bias)
        if isinstance(bias, nn.Parameter):
            self.bias = bias
        else:
            # Fixed: a float64 buffer, exact for float64 inputs.
            self.register_buffer("bias", torch.as_tensor(bias, dtype=torch.float64))

    def forward(self, x: Tensor, y: Tensor, labels: Tensor | None = None) -> Tensor:
        """Loss for ``x`` ``(B, D)`` and ``y`` ``(B, D)``; returns a scalar.

        ``labels`` ``(B,)``: optional integer labels; z_ij = +1 for every pair
        sharing a label.
        """
        prep = self.prepare({"x": x, "y": y}, labels)
        xg, yg = prep.embeddings
        rows = prep.anchors
        if rows is None:
            rows = torch.arange(xg.shape[0], device=xg.device)
        s = xg[rows] @ yg.T if prep.anchors is not None else xg @ yg.T
        tau = self.tau(s)
        return _siglip(s.to(tau.dtype), rows, tau, self.bias.to(tau), prep.labels)

    def extra_repr(self) -> str:
        kind = "learnable" if isinstance(self.bias, nn.Parameter) else "fixed"
        return f"bias={float(self.bias.detach()):g} ({kind})"
