"""Weights shipped inside the package, one folder per registry name.

Each folder holds what ``save_pretrained`` writes (``config.json`` and
``model.safetensors``) and a model card (``README.md``); the registry points at
it with a ``package://unihpr.models.weights/<name>`` URI, so
``unihpr.from_pretrained(name)`` loads it with no network.
"""
