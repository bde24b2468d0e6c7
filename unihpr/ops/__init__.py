"""Numerical kernels: closed-form Gram-matrix spectra and the exact triplet loss."""

from unihpr.ops.exact_triplet import exact_triplet_info_nce, exact_triplet_num_terms
from unihpr.ops.gram import (
    gram_determinant,
    gram_largest_eigenvalue,
    gram_volume,
    largest_gram_eigenvalue,
)

__all__ = [
    "exact_triplet_info_nce",
    "exact_triplet_num_terms",
    "gram_determinant",
    "gram_largest_eigenvalue",
    "gram_volume",
    "largest_gram_eigenvalue",
]
