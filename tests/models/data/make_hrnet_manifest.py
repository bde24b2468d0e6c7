"""Regenerate ``hrnet_timm_manifest.json.gz`` from an installed ``timm``.

The manifest lists, for timm's ``hrnet_w18``/``hrnet_w32``/``hrnet_w48``
classification models (``timm.create_model(name, pretrained=False)``), every
state-dict key with its shape, which keys are parameters (not buffers), and the
parameter totals (full model and ``features_only=True``). No timm code is
copied; timm is only imported.

On machines where timm's ``torchvision`` dependency cannot be imported next to
a CPU build of torch, pass ``--stub-torchvision``: an import hook then serves
empty placeholder modules for ``torchvision.*`` (HRNet itself never uses
torchvision; only timm's data-transform modules import it at package import).

Usage::

    pip download timm --no-deps -d /tmp/timm && unzip /tmp/timm/timm-*.whl -d /tmp/timm/src
    PYTHONPATH=/tmp/timm/src python tests/models/data/make_hrnet_manifest.py --stub-torchvision
"""

from __future__ import annotations

import argparse
import gzip
import importlib.abc
import importlib.machinery
import json
import sys
import types
from pathlib import Path


class _StubMeta(type):
    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StubMeta(name, (object,), {})


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        if name[:1].isupper():  # classes are subclassed at timm import time
            return _StubMeta(name, (object,), {"__init__": lambda self, *a, **k: None})
        sub = _StubModule(f"{self.__name__}.{name}")
        sub.__path__ = []
        sys.modules[sub.__name__] = sub
        return sub

    def __call__(self, *args, **kwargs):
        return None


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stub-torchvision", action="store_true")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("hrnet_timm_manifest.json.gz")
    )
    args = parser.parse_args()
    if args.stub_torchvision:
        sys.meta_path.insert(0, _StubFinder())
    import timm

    manifest = {"timm_version": timm.__version__, "models": {}}
    for name in ("hrnet_w18", "hrnet_w32", "hrnet_w48"):
        model = timm.create_model(name, pretrained=False)
        features = timm.create_model(name, pretrained=False, features_only=True)
        manifest["models"][name] = {
            "state_dict": {k: list(v.shape) for k, v in model.state_dict().items()},
            "parameters": [k for k, _ in model.named_parameters()],
            "num_params": sum(p.numel() for p in model.parameters()),
            "num_params_features_only": sum(p.numel() for p in features.parameters()),
        }
    with gzip.open(args.out, "wt", encoding="utf-8") as fh:
        json.dump(manifest, fh)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
