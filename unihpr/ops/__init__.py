"""Numerical kernels: closed-form Gram-matrix spectra and the triplet losses' ops.

Each formula lives in one place: [`unihpr.ops.gram`][] is the reference of λ1
and its gradient, [`unihpr.ops.sampled_triplet`][] and
[`unihpr.ops.exact_triplet`][] the sampled and the exact all-negatives
Triplet-InfoNCE, [`unihpr.ops.plane_triplet`][] the per-anchor-modality
(Symile-style) exact variant, [`unihpr.ops.backend`][] the one ``backend=`` switch.
"""

from unihpr.ops.exact_triplet import exact_triplet_info_nce
from unihpr.ops.gram import gram_determinant, gram_volume, lambda1_from_cosines, lambda1_from_gram
from unihpr.ops.plane_triplet import plane_triplet_info_nce
from unihpr.ops.sampled_triplet import sampled_triplet_info_nce

__all__ = [
    "exact_triplet_info_nce",
    "gram_determinant",
    "gram_volume",
    "lambda1_from_cosines",
    "lambda1_from_gram",
    "plane_triplet_info_nce",
    "sampled_triplet_info_nce",
]
