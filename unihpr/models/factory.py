"""``create_model`` and ``from_pretrained``: build registered models (timm's ``_factory``)."""

from __future__ import annotations

import os
from typing import Any

from unihpr._validate import check_bool
from unihpr.models.registry import get_config
from unihpr.models.unihpr import UniHPR

__all__ = ["create_model", "from_pretrained"]


def create_model(name: str, /, pretrained: bool = False, **overrides: Any) -> UniHPR:
    """Build a registered UniHPR model.

    Args:
        name: One of [`list_models`][list_models] (built-in or added with
            [`register_model`][register_model]).
        pretrained: Load the entry's weights (shipped in a package, or from its Hub
            id); only inference settings (``diffusion_sampling_steps``,
            ``num_hypotheses``, ``hypothesis_aggregation``) may then be overridden.
        **overrides: ``UniHPRConfig`` fields to change, e.g. ``decoder="mlp"``.

    Returns:
        The model: randomly initialised in train mode, or pretrained in eval mode.

    Examples:
        >>> from unihpr.models import create_model
        >>> create_model("unihpr-tiny", decoder="transformer").config.decoder
        'transformer'
    """
    if check_bool("pretrained", pretrained):
        get_config(name)  # an unknown name is a ValueError listing the names
        return UniHPR.from_pretrained(name, **overrides)  # checks the overrides first
    return UniHPR(get_config(name, **overrides))


def from_pretrained(name_or_path: str | os.PathLike, **kwargs: Any) -> UniHPR:
    """Load a model; see [`UniHPR.from_pretrained`][UniHPR.from_pretrained]."""
    return UniHPR.from_pretrained(name_or_path, **kwargs)
