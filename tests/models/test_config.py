"""UniHPRConfig: JSON round trip and validation."""

import json

import pytest

from unihpr.models.config import UniHPRConfig


def test_json_round_trip():
    cfg = UniHPRConfig(name="x", num_joints=15, image_size=(64, 48), decoder="transformer")
    data = json.loads(json.dumps(cfg.to_dict()))
    back = UniHPRConfig.from_dict(data)
    assert back == cfg and back.image_size == (64, 48)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"decoder": "gan"}, "decoder"),
        ({"num_joints": 0}, "num_joints"),
        ({"root_joint": 17}, "root_joint"),
        ({"image_size": (8, 8)}, "image_size"),
        ({"hypothesis_aggregation": "oracle"}, "hypothesis_aggregation"),
        ({"diffusion_schedule": "sqrt"}, "diffusion_schedule"),
        ({"pose_readout": "mean"}, "pose_readout"),
        ({"bbox_features": "pixels"}, "bbox_features"),
    ],
)
def test_invalid_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UniHPRConfig(**kwargs)


def test_unknown_fields_are_named():
    with pytest.raises(ValueError, match="embed_dimm"):
        UniHPRConfig.from_dict({"embed_dimm": 3})
    with pytest.raises(ValueError, match="widht"):
        UniHPRConfig().replace(widht=3)
