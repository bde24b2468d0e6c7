"""Pose-estimation and retrieval metrics.

All pose metrics take (..., J, C) tensors (numpy arrays are accepted; then a
Python float is returned) and report errors in the input's units: pass
millimetres to get the usual mm numbers. Which joints are averaged matters for
comparisons with published results (17 joints, or 16 without the root), so
every metric takes ``joints=`` (an index list) or ``exclude_root=True``.

Bad input: empty batches raise ``ValueError``. NaN is treated the same way by
every metric: a NaN coordinate makes the error of its pose NaN (for
[`pa_mpjpe`][] any non-finite coordinate does, since the alignment is then
undefined), and a NaN error makes [`pck`][], [`auc`][] and every mean NaN, so a
diverged model is never scored as a plausible number. Retrieval rejects
embeddings with NaN/inf entries or zero rows (their cosine similarity is
undefined).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from unihpr._validate import check_choice, check_int, check_real

__all__ = [
    "aggregate_by_action",
    "auc",
    "image_retrieval_topk",
    "mpjpe",
    "n_mpjpe",
    "pa_mpjpe",
    "pck",
    "per_action_error",
    "pose_retrieval_error",
    "procrustes_align",
    "retrieve_nearest",
]

ArrayLike = torch.Tensor | np.ndarray


def _to_tensor(x: ArrayLike, name: str) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, False
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.asarray(x, dtype=np.float64)), True
    raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(x).__name__}")


def _check_pair(pred: ArrayLike, target: ArrayLike, dims: tuple[int, ...] = (2, 3)):
    p, p_np = _to_tensor(pred, "pred")
    t, t_np = _to_tensor(target, "target")
    if p.shape != t.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(p.shape)} and {tuple(t.shape)}"
        )
    if p.ndim < 2 or p.shape[-1] not in dims:
        raise ValueError(
            f"pred must have shape (..., J, {'|'.join(map(str, dims))}), got {tuple(p.shape)}"
        )
    if p.shape[-2] == 0:
        raise ValueError("pred has no joints (J = 0)")
    if p.numel() == 0:
        raise ValueError(f"pred and target hold no poses (shape {tuple(p.shape)})")
    if not p.is_floating_point():
        p = p.double()
    if not t.is_floating_point():
        t = t.double()
    return p, t.to(p.dtype), p_np or t_np


def _joint_index(
    num_joints: int, joints: Sequence[int] | None, exclude_root: bool, root: int
) -> list[int] | None:
    if joints is not None and exclude_root:
        raise ValueError("give either joints= or exclude_root=True, not both")
    if exclude_root:
        check_int("root", root, low=0, high=num_joints - 1)
        return [j for j in range(num_joints) if j != root]
    if joints is None:
        return None
    idx = np.asarray(joints.detach().cpu() if isinstance(joints, torch.Tensor) else joints)
    if idx.ndim != 1 or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
        raise TypeError(
            "joints must be a 1-D sequence, array or tensor of integer indices, got shape "
            f"{idx.shape} and dtype {idx.dtype}"
        )
    if idx.size == 0 or idx.min() < 0 or idx.max() >= num_joints:
        raise ValueError(
            f"joints must be non-empty indices in [0, {num_joints}), got {idx.tolist()}"
        )
    return idx.tolist()


def _distances(
    p: torch.Tensor, t: torch.Tensor, joints: Sequence[int] | None, exclude_root: bool, root: int
) -> torch.Tensor:
    """(..., J') Euclidean distances of the selected joints."""
    idx = _joint_index(p.shape[-2], joints, exclude_root, root)
    err = torch.linalg.vector_norm(p - t, dim=-1)
    return err if idx is None else err[..., idx]


def _reduce(err: torch.Tensor, reduction: str, as_numpy: bool):
    """err: (..., J) per-joint errors -> mean (scalar) or per-pose (...)."""
    check_choice("reduction", reduction, ("mean", "none"))
    per_pose = err.mean(dim=-1)
    if reduction == "none":
        return per_pose.detach().cpu().numpy() if as_numpy else per_pose
    out = per_pose.mean()
    return float(out) if as_numpy else out


def mpjpe(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    joints: Sequence[int] | None = None,
    exclude_root: bool = False,
    root: int = 0,
    reduction: str = "mean",
) -> torch.Tensor | float | np.ndarray:
    """Mean per-joint position error (protocol 1).

    Args:
        pred: Predictions (..., J, C), C in {2, 3}; root-relative for protocol 1.
        target: Ground truth, same shape.
        joints: Indices of the joints to average over (default all).
        exclude_root: Average over all joints except ``root``.
        root: Root index used by ``exclude_root``.
        reduction: ``"mean"`` for one number, ``"none"`` for per-pose errors (...).

    Returns:
        Mean Euclidean joint error in the input's units (a float for numpy input).
    """
    p, t, as_np = _check_pair(pred, target)
    return _reduce(_distances(p, t, joints, exclude_root, root), reduction, as_np)


def procrustes_align(pred: ArrayLike, target: ArrayLike) -> torch.Tensor:
    """Similarity-align each pose in ``pred`` to ``target`` (computed in float64).

    Finds scale s, rotation R (a proper rotation: reflections are excluded by
    flipping the sign of the smallest singular direction) and translation t
    minimising ``||s * pred @ R + t - target||``.

    Args:
        pred: (..., J, 3).
        target: (..., J, 3).

    Returns:
        Aligned ``pred``, (..., J, 3), in ``pred``'s dtype (differentiable).
    """
    p, t, _ = _check_pair(pred, target, dims=(3,))
    x, y = p.double(), t.double()
    # The SVD fails on non-finite input: align finite stand-ins, then mark those poses NaN.
    bad = ~(torch.isfinite(x).all(dim=(-2, -1)) & torch.isfinite(y).all(dim=(-2, -1)))
    x = torch.where(bad[..., None, None], torch.zeros_like(x), x)
    y = torch.where(bad[..., None, None], torch.zeros_like(y), y)
    mu_x, mu_y = x.mean(dim=-2, keepdim=True), y.mean(dim=-2, keepdim=True)
    x0, y0 = x - mu_x, y - mu_y
    norm_x = (x0**2).sum(dim=(-2, -1))
    h = x0.transpose(-1, -2) @ y0  # (..., 3, 3)
    u, s, vh = torch.linalg.svd(h)
    d = torch.sign(torch.linalg.det(u @ vh))
    d = torch.where(d == 0, torch.ones_like(d), d)
    diag = torch.ones_like(s)
    diag = torch.cat([diag[..., :2], d.unsqueeze(-1)], dim=-1)
    rot = u @ (diag.unsqueeze(-1) * vh)
    # A degenerate prediction (all joints equal) has zero spread: scale 0 then
    # collapses it onto the target centroid instead of dividing by zero.
    scale = (s * diag).sum(-1) / norm_x.clamp_min(torch.finfo(torch.float64).tiny)
    aligned = scale[..., None, None] * (x0 @ rot) + mu_y
    aligned = torch.where(bad[..., None, None], torch.full_like(aligned, torch.nan), aligned)
    return aligned.to(p.dtype)


def pa_mpjpe(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    joints: Sequence[int] | None = None,
    exclude_root: bool = False,
    root: int = 0,
    reduction: str = "mean",
) -> torch.Tensor | float | np.ndarray:
    """MPJPE after per-pose similarity Procrustes alignment (protocol 2).

    The alignment uses all J joints; ``joints`` / ``exclude_root`` only choose
    which joints are averaged afterwards. Arguments as in [`mpjpe`][];
    shapes (..., J, 3). The alignment minimises the squared error, so the
    aligned RMS error never exceeds the unaligned one; the mean of joint
    distances reported here is almost always, but not provably, <= MPJPE.
    """
    p, t, as_np = _check_pair(pred, target, dims=(3,))
    aligned = procrustes_align(p.double(), t.double())
    err = _distances(aligned, t.double(), joints, exclude_root, root).to(p.dtype)
    return _reduce(err, reduction, as_np)


def n_mpjpe(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    joints: Sequence[int] | None = None,
    exclude_root: bool = False,
    root: int = 0,
    reduction: str = "mean",
) -> torch.Tensor | float | np.ndarray:
    """MPJPE after the least-squares per-pose scale ``s = <p, t> / <p, p>``.

    Poses are used as given (root-relative poses are the usual input).
    Arguments as in [`mpjpe`][].
    """
    p, t, as_np = _check_pair(pred, target)
    num = (p * t).sum(dim=(-2, -1), keepdim=True)
    den = (p * p).sum(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(p.dtype).tiny)
    return _reduce(_distances(num / den * p, t, joints, exclude_root, root), reduction, as_np)


def pck(
    pred: ArrayLike,
    target: ArrayLike,
    threshold: float = 150.0,
    *,
    joints: Sequence[int] | None = None,
    exclude_root: bool = False,
    root: int = 0,
) -> float:
    """Percentage of joints whose error is at most ``threshold`` (3DHP PCK).

    ``threshold`` is in the input's units (150 for millimetres, 0.15 for
    metres). Returns a percentage in [0, 100], or NaN if a selected joint's
    error is NaN.
    """
    threshold = check_real("threshold", threshold, low=0.0)
    p, t, _ = _check_pair(pred, target)
    err = _distances(p.double(), t.double(), joints, exclude_root, root)
    return _pck_percent(err, torch.tensor([threshold], dtype=torch.float64))


def auc(
    pred: ArrayLike,
    target: ArrayLike,
    max_threshold: float = 150.0,
    steps: int = 31,
    *,
    joints: Sequence[int] | None = None,
    exclude_root: bool = False,
    root: int = 0,
) -> float:
    """Area under the PCK curve, 3DHP convention: mean PCK over ``steps``
    thresholds evenly spaced in [0, max_threshold] (0, 5, ..., 150 mm).

    Returns a percentage in [0, 100], or NaN if a selected joint's error is NaN.
    """
    steps = check_int("steps", steps, low=2)
    max_threshold = check_real("max_threshold", max_threshold, low=0.0, low_open=True)
    p, t, _ = _check_pair(pred, target)
    err = _distances(p.double(), t.double(), joints, exclude_root, root)
    return _pck_percent(err, torch.linspace(0.0, max_threshold, steps, dtype=torch.float64))


def _pck_percent(err: torch.Tensor, thresholds: torch.Tensor) -> float:
    """Mean over ``thresholds`` of the percentage of errors within each; NaN if one is NaN."""
    if bool(torch.isnan(err).any()):
        return float("nan")
    return float((err.reshape(-1, 1) <= thresholds).double().mean() * 100.0)


_POSE_METRICS = {"mpjpe": mpjpe, "pa_mpjpe": pa_mpjpe, "n_mpjpe": n_mpjpe}


def aggregate_by_action(
    errors: ArrayLike | Sequence[float], actions: Sequence[str]
) -> dict[str, float]:
    """Average per-frame errors per action, then over actions.

    Args:
        errors: Per-frame errors (N,).
        actions: Action name per frame (N strings).

    Returns:
        ``{action: mean error}`` for every action (sorted by name) plus the key
        ``"average"``: the unweighted mean over actions (the H36M protocol).
    """
    e = errors.detach().cpu().numpy() if isinstance(errors, torch.Tensor) else np.asarray(errors)
    e = e.astype(np.float64).reshape(-1)
    if len(actions) != e.shape[0]:
        raise ValueError(f"actions has {len(actions)} entries but errors has {e.shape[0]}")
    if e.shape[0] == 0:
        raise ValueError("errors is empty")
    names = np.asarray([str(a) for a in actions])
    out = {a: float(e[names == a].mean()) for a in sorted(set(names.tolist()))}
    if "average" in out:
        raise ValueError("an action may not be called 'average'")
    out["average"] = float(np.mean(list(out.values())))
    return out


def per_action_error(
    pred: ArrayLike,
    target: ArrayLike,
    actions: Sequence[str],
    metric: str = "mpjpe",
    **kwargs,
) -> dict[str, float]:
    """Per-action protocol: ``metric`` per frame, averaged per action, then over actions.

    Args:
        pred: (N, J, 3).
        target: (N, J, 3).
        actions: N action names.
        metric: ``"mpjpe"``, ``"pa_mpjpe"`` or ``"n_mpjpe"``.
        **kwargs: ``joints`` / ``exclude_root`` / ``root`` for the metric.
    """
    check_choice("metric", metric, _POSE_METRICS)
    per_frame = _POSE_METRICS[metric](pred, target, reduction="none", **kwargs)
    if per_frame.ndim != 1:
        raise ValueError(f"pred must have shape (N, J, 3), got {tuple(np.shape(pred))}")
    return aggregate_by_action(per_frame, actions)


def _embeddings(x: ArrayLike, name: str) -> torch.Tensor:
    t, _ = _to_tensor(x, name)
    if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, D) with N, D > 0, got {tuple(t.shape)}")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    t = t.detach().double()
    # Divide by the largest entry first: the norm of rows like 1e-200 or 1e200
    # under/overflows in float64, and cosine similarity is scale-invariant.
    peak = t.abs().amax(dim=-1, keepdim=True)
    bad = ~torch.isfinite(peak[:, 0]) | (peak[:, 0] == 0)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        what = "zero" if bool(peak[row, 0] == 0) else "NaN or infinite"
        raise ValueError(
            f"{name} row {row} is {what} (shape {tuple(t.shape)}): it has no direction to "
            "compare; embeddings must be finite and non-zero"
        )
    t = t / peak
    return t / torch.linalg.vector_norm(t, dim=-1, keepdim=True)


def retrieve_nearest(
    queries: ArrayLike,
    gallery: ArrayLike,
    k: int = 1,
    chunk_size: int = 4096,
    return_scores: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Indices (Q, k) of the k gallery items most cosine-similar to each query, best first.

    Args:
        queries: (Q, D) embeddings (need not be normalised); rows must be
            finite and non-zero.
        gallery: (G, D) embeddings; the same condition.
        k: Number of neighbours, 1 <= k <= G.
        chunk_size: Queries scored at once (bounds memory at ``chunk_size * G``).
        return_scores: Also return the cosine similarities (Q, k), float64.

    Raises:
        ValueError: A row is NaN/inf or zero, the shapes disagree, or ``k`` is
            out of range.
    """
    k = check_int("k", k, low=1)
    chunk_size = check_int("chunk_size", chunk_size, low=1)
    q, g = _embedding_pair(queries, gallery, "queries", "gallery")
    if not 1 <= k <= g.shape[0]:
        raise ValueError(f"k must be in [1, {g.shape[0]}], got {k}")
    return _nearest(q, g, k, chunk_size, return_scores)


def _embedding_pair(
    queries: ArrayLike, gallery: ArrayLike, q_name: str, g_name: str
) -> tuple[torch.Tensor, torch.Tensor]:
    q, g = _embeddings(queries, q_name), _embeddings(gallery, g_name)
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"{q_name} have D={q.shape[1]} but {g_name} has D={g.shape[1]}")
    return q, g


def _nearest(
    q: torch.Tensor, g: torch.Tensor, k: int, chunk_size: int = 4096, return_scores: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Top-k indices (and cosines) for unit rows ``q`` (Q, D) and ``g`` (G, D)."""
    tops = [(q[i : i + chunk_size] @ g.T).topk(k, dim=1) for i in range(0, len(q), chunk_size)]
    idx = torch.cat([t.indices for t in tops])
    if return_scores:
        return idx, torch.cat([t.values for t in tops])
    return idx


def pose_retrieval_error(
    query_embeddings: ArrayLike,
    gallery_embeddings: ArrayLike,
    gallery_poses: ArrayLike,
    query_poses: ArrayLike,
    metric: str = "mpjpe",
    **kwargs,
) -> float:
    """Error of the retrieved pose: for each query the gallery item with the
    most similar embedding is retrieved and its pose compared with the query's
    ground-truth pose.

    Args:
        query_embeddings: (Q, D).
        gallery_embeddings: (G, D).
        gallery_poses: (G, J, 3).
        query_poses: (Q, J, 3).
        metric: ``"mpjpe"``, ``"pa_mpjpe"`` or ``"n_mpjpe"``.
        **kwargs: joint selection for the metric.

    Returns:
        Mean error over queries, in the poses' units.
    """
    check_choice("metric", metric, _POSE_METRICS)
    gp, _ = _to_tensor(gallery_poses, "gallery_poses")
    qp, _ = _to_tensor(query_poses, "query_poses")
    q, g = _embedding_pair(
        query_embeddings, gallery_embeddings, "query_embeddings", "gallery_embeddings"
    )
    n_q, n_g = q.shape[0], g.shape[0]
    if gp.ndim != 3 or gp.shape[0] != n_g:
        raise ValueError(f"gallery_poses must have shape ({n_g}, J, 3), got {tuple(gp.shape)}")
    if qp.ndim != 3 or qp.shape[0] != n_q:
        raise ValueError(f"query_poses must have shape ({n_q}, J, 3), got {tuple(qp.shape)}")
    idx = _nearest(q, g, 1)[:, 0]
    return float(_POSE_METRICS[metric](gp.detach().double()[idx], qp.detach().double(), **kwargs))


def image_retrieval_topk(
    query_embeddings: ArrayLike,
    gallery_embeddings: ArrayLike,
    ks: Sequence[int] = (1, 3),
    targets: ArrayLike | Sequence[int] | None = None,
) -> dict[str, float]:
    """Top-k retrieval accuracy in percent.

    Args:
        query_embeddings: (Q, D), e.g. 3D-pose embeddings.
        gallery_embeddings: (G, D), e.g. image embeddings.
        ks: The k values to report.
        targets: Index of the correct gallery item per query (Q,); defaults to
            ``arange(Q)`` (query i is paired with gallery item i).

    Returns:
        ``{"top1": ..., "top3": ...}``.
    """
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
        raise TypeError(f"ks must be a sequence of ints, got {ks!r}")
    ks = [check_int(f"ks[{i}]", k, low=1) for i, k in enumerate(ks)]
    if not ks:
        raise ValueError("ks must hold at least one k")
    q, g = _embedding_pair(
        query_embeddings, gallery_embeddings, "query_embeddings", "gallery_embeddings"
    )
    n_q, n_g = q.shape[0], g.shape[0]
    if targets is None:
        if n_q > n_g:
            raise ValueError(f"without targets, need Q <= G, got Q={n_q}, G={n_g}")
        tgt = torch.arange(n_q)
    else:
        tgt = torch.as_tensor(np.asarray(targets))
        if tgt.is_floating_point() or tgt.dtype == torch.bool or tgt.is_complex():
            raise TypeError(f"targets must be integer indices, got dtype {tgt.dtype}")
        tgt = tgt.long().reshape(-1)
        if tgt.shape[0] != n_q or (tgt < 0).any() or (tgt >= n_g).any():
            raise ValueError(f"targets must be {n_q} indices in [0, {n_g})")
    kmax = min(max(ks), n_g)
    top = _nearest(q, g, kmax)
    hit = top == tgt[:, None]
    return {
        f"top{k}": float(hit[:, : min(int(k), n_g)].any(dim=1).double().mean() * 100.0) for k in ks
    }
