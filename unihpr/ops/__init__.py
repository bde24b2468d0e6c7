"""Numerical kernels: closed-form Gram-matrix spectra and their fused variants."""

from unihpr.ops.gram import largest_gram_eigenvalue

__all__ = ["largest_gram_eigenvalue"]
