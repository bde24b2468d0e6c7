"""UniHPRConfig: JSON round trip and validation."""

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from unihpr.models.config import _RULES, INFERENCE_FIELDS, LIMITS, UniHPRConfig


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
        # issue 12: accepted before
        ({"bbox_reference": 0}, "bbox_reference"),
        ({"bbox_reference": math.nan}, "bbox_reference"),
        ({"bbox_reference": math.inf}, "bbox_reference"),
        ({"decoder_width": 0}, "decoder_width"),
        ({"decoder_depth": -1}, "decoder_depth"),
        ({"pose_mlp_ratio": 0}, "pose_mlp_ratio"),
        ({"target_scale_3d": 0}, "target_scale_3d"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"embed_dim": 800000}, "embed_dim"),
        ({"embed_dim": 2**40}, "embed_dim"),
        ({"pose_depth": 1000}, "pose_depth"),
        ({"num_hypotheses": 0}, "num_hypotheses"),
        ({"diffusion_sampling_steps": 0}, "diffusion_sampling_steps"),
        ({"image_size": (64, 64, 3)}, "image_size"),
        ({"image_size": (64, 100_000)}, r"image_size\[1\]"),
        ({"pose_width": 30, "pose_heads": 8}, "divisible"),
        ({"decoder": "transformer", "decoder_width": 30, "decoder_heads": 8}, "divisible"),
        ({"decoder": "diffusion", "decoder_width": 5, "decoder_heads": 1}, "even"),
        ({"name": ""}, "name"),
        ({"image_backbone": "resnet50"}, "image_backbone"),
    ],
)
def test_invalid_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UniHPRConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_hypotheses": 2.5}, "num_hypotheses must be an int, got float"),
        ({"root_joint": 0.5}, "root_joint must be an int"),
        ({"embed_dim": True}, "embed_dim must be an int, got bool"),
        ({"image_size": (64.0, 64)}, r"image_size\[0\] must be an int"),
        ({"image_size": "64x64"}, "image_size must be a pair"),
        ({"bbox_reference": "64"}, "bbox_reference must be a real number"),
        ({"bbox_reference": True}, "bbox_reference must be a real number"),
        ({"decoder": 3}, "decoder must be one of"),
        ({"use_representation_token": 1}, "use_representation_token must be a bool"),
        ({"name": None}, "name must be a str"),
    ],
)
def test_wrong_types(kwargs, match):
    with pytest.raises(TypeError, match=match):
        UniHPRConfig(**kwargs)


def test_every_field_has_a_rule_and_defaults_pass():
    assert {f.name for f in dataclasses.fields(UniHPRConfig)} == set(_RULES)
    assert set(_RULES) >= INFERENCE_FIELDS
    cfg = UniHPRConfig(bbox_reference=64)
    assert isinstance(cfg.bbox_reference, float) and cfg.bbox_reference == 64.0
    assert UniHPRConfig(image_size=[64, 48]).image_size == (64, 48)


def test_frozen_and_for_inference():
    cfg = UniHPRConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.embed_dim = 3  # type: ignore[misc]
    assert cfg.for_inference(num_hypotheses=5).num_hypotheses == 5
    with pytest.raises(ValueError, match="architecture field"):
        cfg.for_inference(embed_dim=64)
    with pytest.raises(ValueError, match="num_hypotheses"):
        cfg.for_inference(num_hypotheses=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"diffusion_sampling_steps": 1001},
            "diffusion_sampling_steps must be an int >= 1 and <= 1000",
        ),
        ({"num_hypotheses": 65}, "num_hypotheses must be an int >= 1 and <= 64"),
        ({"diffusion_sampling_steps": 1000, "num_hypotheses": 11}, "1000 \\* 11 = 11000"),
        ({"diffusion_train_steps": 100_001}, "diffusion_train_steps"),
    ],
)
def test_sampling_effort_is_capped(kwargs, match):
    """Issue 22: a config.json asked for 100,000 steps x 1,024 hypotheses per input."""
    with pytest.raises(ValueError, match=match):
        UniHPRConfig(**kwargs)
    top = UniHPRConfig(diffusion_sampling_steps=1000, num_hypotheses=10)
    assert top.diffusion_sampling_steps * top.num_hypotheses == LIMITS["denoiser_calls"]
    assert UniHPRConfig(num_hypotheses=64, diffusion_sampling_steps=150).num_hypotheses == 64


def test_a_field_that_does_not_exist_is_refused():
    data = UniHPRConfig().to_dict()
    with pytest.raises(ValueError, match=r"unknown UniHPRConfig field\(s\): \['extra'\]"):
        UniHPRConfig.from_dict({**data, "extra": {"a": 1}})
    with pytest.raises(TypeError):
        UniHPRConfig(extra={})  # type: ignore[call-arg]


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**41), 2**41), st.floats(allow_nan=True),
    st.text(max_size=5), st.lists(st.integers(-5, 300), max_size=3),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(_RULES)), _VALUES)
def test_fuzz_any_field_either_validates_or_raises_naming_it(field, value):
    try:
        cfg = UniHPRConfig(**{field: value})
    except (TypeError, ValueError) as err:
        assert field in str(err) or "divisible" in str(err) or "root_joint" in str(err)
        return
    # accepted: the value round-trips through JSON and respects the bounds
    assert UniHPRConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for name in ("embed_dim", "pose_width", "decoder_width"):
        assert getattr(cfg, name) <= LIMITS["width"]


def test_unknown_fields_are_named():
    with pytest.raises(ValueError, match="embed_dimm"):
        UniHPRConfig.from_dict({"embed_dimm": 3})
    with pytest.raises(ValueError, match="widht"):
        UniHPRConfig().replace(widht=3)
