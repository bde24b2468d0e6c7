"""Evaluation of a UniHPR model with the paper's protocols, via [`unihpr.metrics`][].

One pass over a dataset collects the embeddings of every modality present,
the 3D poses decoded from each source embedding and the ground truth; the
numbers are then computed from those arrays:

* 3D pose estimation (Tables I/II): MPJPE (protocol 1) and PA-MPJPE
  (protocol 2) in millimetres over all 17 (or J) joints, root included, by
  [`pose_errors`][]: ``mpjpe`` / ``pa_mpjpe`` average per action first,
  then over actions (the Human3.6M protocol; on the bundled mocap data an
  action is a clip) when samples carry an ``"action"``, and
  ``mpjpe_sample`` / ``pa_mpjpe_sample`` average over all samples;
* pose retrieval (Table III): for each 2D-pose (or image) query the 3D-pose
  embedding of the gallery with the highest cosine is retrieved and its pose
  compared with the query's true pose (MPJPE / PA-MPJPE, mm). The gallery is
  the evaluated set itself unless another one is given, so a query's own 3D
  pose is in it and a perfectly aligned space scores 0 (as in the paper's
  test-set retrieval);
* image retrieval (Table IV): top-1 / top-3 accuracy (%) of finding a query's
  own image among the images of the set from its 3D- or 2D-pose embedding,
  optionally on every ``image_retrieval_stride``-th sample (the paper uses 1 fps,
  i.e. stride 50 on 50 fps Human3.6M);
* the mean cosine similarity of the matching cross-modal embedding pairs (the
  quantity of the paper's Fig. 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from unihpr._validate import check_int
from unihpr.metrics import (
    aggregate_by_action,
    image_retrieval_topk,
    mpjpe,
    pa_mpjpe,
    pose_retrieval_error,
)
from unihpr.modalities import MODALITIES, check_modalities


@dataclass
class Collected:
    """Arrays gathered by [`collect`][].

    Attributes:
        embeddings: ``{modality: (N, D)}`` L2-normalised embeddings.
        pred3d: ``{source: (N, J, 3)}`` 3D poses decoded from each source, metres.
        target3d: (N, J, 3) ground-truth root-relative 3D poses, metres.
        actions: N action names (empty when the dataset has none).
    """

    embeddings: dict[str, Tensor] = field(default_factory=dict)
    pred3d: dict[str, Tensor] = field(default_factory=dict)
    target3d: Tensor | None = None
    actions: list[str] = field(default_factory=list)


@torch.no_grad()
def collect(
    model: nn.Module,
    dataset: Dataset,
    *,
    modalities: Sequence[str] | None = None,
    decode: bool = True,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    num_workers: int = 0,
    max_samples: int | None = None,
    decoder_kwargs: dict[str, Any] | None = None,
) -> Collected:
    """Embed (and decode) every sample of ``dataset`` with ``model`` in eval mode.

    Args:
        model: A ``UniHPR`` model (or anything with its ``embed`` and ``decode`` methods).
        dataset: Dict-sample dataset with at least ``"pose3d"``.
        modalities: Modalities to embed; by default those present in the first sample.
        decode: Also decode 3D poses from every image / 2D-pose embedding.
        batch_size: Evaluation batch size.
        device: Device; by default that of the model's parameters.
        num_workers: DataLoader workers.
        max_samples: Use only the first ``max_samples`` samples.
        decoder_kwargs: Passed to ``model.decode`` (e.g. diffusion ``num_steps``,
            ``num_hypotheses``).

    Returns:
        A [`Collected`][], tensors on the CPU.
    """
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    if max_samples is not None:
        max_samples = check_int("max_samples", max_samples, low=1)
        dataset = torch.utils.data.Subset(dataset, range(min(max_samples, len(dataset))))
    first = dataset[0]
    if "pose3d" not in first:
        raise ValueError(f"evaluation samples need 'pose3d'; got keys {sorted(first)}")
    if modalities is None:
        modalities = [m for m in MODALITIES if m in first]
    modalities = check_modalities(modalities)
    missing = [m for m in modalities if m not in first]
    if missing:
        raise ValueError(f"modalities {missing} are not in the samples (keys {sorted(first)})")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = Collected()
    embs: dict[str, list[Tensor]] = {m: [] for m in modalities}
    preds: dict[str, list[Tensor]] = {m: [] for m in modalities if m != "pose3d"}
    targets: list[Tensor] = []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    try:
        for batch in loader:
            # 2D poses in their keypoints' own box, as in training (unihpr.train.stages):
            # a dataset's silhouette / detector box is not used
            batch_in = {k: v.to(device) for k, v in batch.items()
                        if k != "bbox" and isinstance(v, Tensor)}  # fmt: skip
            emb = model.embed(batch_in, modalities)
            for m, e in emb.items():
                embs[m].append(e.float().cpu())
                if decode and m in preds:
                    pred = model.decode(e, m, dims=3, **(decoder_kwargs or {}))
                    preds[m].append(pred.float().cpu())
            targets.append(batch["pose3d"].float())
            if "action" in batch:
                out.actions.extend(str(a) for a in batch["action"])
    finally:
        model.train(was_training)
    out.embeddings = {m: torch.cat(v) for m, v in embs.items()}
    out.pred3d = {m: torch.cat(v) for m, v in preds.items() if v}
    out.target3d = torch.cat(targets)
    return out


def pose_errors(
    pred: Tensor, target: Tensor, actions: Sequence[str] | None = None
) -> dict[str, float]:
    """The project's one scoring protocol for 3D poses, in millimetres.

    Every evaluated row (UniHPR, baselines, the mean pose) goes through this
    function, so their numbers are comparable.

    Args:
        pred: (N, J, 3) root-relative predictions, metres.
        target: (N, J, 3) root-relative ground truth, metres.
        actions: N action (clip) names, or ``None`` / empty.

    Returns:
        ``mpjpe`` and ``pa_mpjpe``: averaged per action, then over actions (the
        Human3.6M protocol; equal to the per-sample average without actions);
        ``mpjpe_sample`` and ``pa_mpjpe_sample``: averaged over all samples.
    """
    out = {}
    for name, fn in (("mpjpe", mpjpe), ("pa_mpjpe", pa_mpjpe)):
        per_sample = 1000.0 * fn(pred, target, reduction="none").double()
        out[f"{name}_sample"] = float(per_sample.mean())
        out[name] = (
            aggregate_by_action(per_sample, list(actions))["average"]
            if actions
            else out[f"{name}_sample"]
        )
    return out


def mean_cosine(embeddings: dict[str, Tensor]) -> dict[str, float]:
    """Mean cosine similarity of matching samples for every pair of modalities.

    Args:
        embeddings: ``{modality: (N, D)}``; rows with the same index belong together.

    Returns:
        ``{"cos/<m1>-<m2>": value, ..., "cos/mean": mean over pairs}``.
    """
    names = [m for m in MODALITIES if m in embeddings]
    if len(names) < 2:
        raise ValueError(f"need at least two modalities, got {names}")
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            x = nn.functional.normalize(embeddings[a].double(), dim=-1)
            y = nn.functional.normalize(embeddings[b].double(), dim=-1)
            if x.shape != y.shape:
                raise ValueError(f"{a} {tuple(x.shape)} and {b} {tuple(y.shape)} differ in shape")
            out[f"cos/{a}-{b}"] = float((x * y).sum(-1).mean())
    out["cos/mean"] = sum(out.values()) / len(out)
    return out


def compute_metrics(
    data: Collected,
    *,
    gallery: Collected | None = None,
    image_retrieval_stride: int = 1,
) -> dict[str, float]:
    """All evaluation numbers of [`collect`][] output (errors in mm, accuracies in %).

    Keys (those whose modalities are present): ``lifting/mpjpe``,
    ``lifting/pa_mpjpe`` (2D -> 3D), ``image/mpjpe``, ``image/pa_mpjpe``
    (image -> 3D), each also as ``..._sample`` (see [`pose_errors`][]), ``retrieval/2d-3d/mpjpe``, ``retrieval/2d-3d/pa_mpjpe``,
    ``retrieval/image-3d/...``, ``retrieval/3d-image/top1|top3``,
    ``retrieval/2d-image/top1|top3``, and ``cos/...`` from [`mean_cosine`][].

    Args:
        data: The evaluated set.
        gallery: Retrieval gallery with 3D-pose embeddings (default ``data``).
        image_retrieval_stride: Subsampling of the image retrieval (50 = 1 fps on H36M).
    """
    check_int("image_retrieval_stride", image_retrieval_stride, low=1)
    if data.target3d is None:
        raise ValueError("data has no target3d: build it with collect()")
    out: dict[str, float] = {}
    names = {"pose2d": "lifting", "image": "image"}
    for src, prefix in names.items():
        if src in data.pred3d:
            for k, v in pose_errors(data.pred3d[src], data.target3d, data.actions).items():
                out[f"{prefix}/{k}"] = v
    gal = gallery or data
    if "pose3d" in gal.embeddings:
        for src, tag in (("pose2d", "2d-3d"), ("image", "image-3d")):
            if src in data.embeddings:
                for metric in ("mpjpe", "pa_mpjpe"):
                    err = pose_retrieval_error(
                        data.embeddings[src], gal.embeddings["pose3d"], gal.target3d,
                        data.target3d, metric=metric,
                    )  # fmt: skip
                    out[f"retrieval/{tag}/{metric}"] = 1000.0 * err
    if "image" in data.embeddings:
        sel = slice(None, None, image_retrieval_stride)
        for src, tag in (("pose3d", "3d-image"), ("pose2d", "2d-image")):
            if src in data.embeddings:
                acc = image_retrieval_topk(
                    data.embeddings[src][sel], data.embeddings["image"][sel], ks=(1, 3)
                )
                out[f"retrieval/{tag}/top1"] = acc["top1"]
                out[f"retrieval/{tag}/top3"] = acc["top3"]
    if len(data.embeddings) >= 2:
        out.update(mean_cosine(data.embeddings))
    return out


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    *,
    gallery: Dataset | None = None,
    modalities: Sequence[str] | None = None,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    image_retrieval_stride: int = 1,
    max_samples: int | None = None,
    decoder_kwargs: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Collect and score ``dataset`` (see [`compute_metrics`][] for the keys)."""
    data = collect(
        model, dataset, modalities=modalities, batch_size=batch_size, device=device,
        max_samples=max_samples, decoder_kwargs=decoder_kwargs,
    )  # fmt: skip
    gal = None
    if gallery is not None:
        gal = collect(model, gallery, modalities=("pose3d",), decode=False,
                      batch_size=batch_size, device=device)  # fmt: skip
    return compute_metrics(data, gallery=gal, image_retrieval_stride=image_retrieval_stride)
