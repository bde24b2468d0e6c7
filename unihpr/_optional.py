"""Import optional dependencies with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

_EXTRA_OF = {
    "triton": "triton",
    "pybullet": "demo",
    "matplotlib": "demo",
    "PIL": "image",
    "tensorboard": "tensorboard",
    "torch.utils.tensorboard": "tensorboard",
}


def require(module: str, extra: str | None = None) -> ModuleType:
    """Import ``module`` or raise an ``ImportError`` naming the pip extra.

    Args:
        module: Dotted module name, e.g. ``"pybullet"``.
        extra: The ``unihpr`` extra that installs it; looked up when omitted.

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra = extra or _EXTRA_OF.get(module.split(".")[0], module)
        # unihpr is installed from a checkout (it is not on PyPI yet), so the
        # hint is the command that works there.
        raise ImportError(
            f"{module!r} is required for this feature but is not installed; install "
            f'unihpr\'s {extra!r} extra: `pip install -e ".[{extra}]"` in the unihpr checkout'
        ) from err


def pyplot() -> ModuleType:
    """``matplotlib.pyplot`` on the Agg backend (files only, no display), or the ``demo`` hint."""
    require("matplotlib").use("Agg", force=False)
    return importlib.import_module("matplotlib.pyplot")
