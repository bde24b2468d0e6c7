"""HRNet backbone (Wang et al., "Deep High-Resolution Representation Learning").

Written for unihpr so that no timm import is needed. Module names follow the
original HRNet-Image-Classification code, which timm also keeps, so the
state-dict keys and shapes of ``HRNet(hrnet_spec("hrnet_w32"), include_head=True)``
equal those of ``timm.create_model("hrnet_w32")`` exactly (checked against a
committed manifest in ``tests/models/data``). ImageNet weights saved by timm
therefore load with ``strict=True``.

The classification head (``incre_modules``, ``downsamp_modules``,
``final_layer``, ``classifier``) is only built when ``include_head=True``;
UniHPR uses the four stage-4 branch outputs and builds the backbone without it.
[`load_timm_state_dict`][] drops the head keys of a timm checkpoint in that
case (and only those: every backbone key must still match).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "HEAD_PREFIXES",
    "HRNET_NAMES",
    "HRNet",
    "HRNetSpec",
    "StageSpec",
    "hrnet_spec",
    "load_timm_state_dict",
]

HEAD_PREFIXES = ("incre_modules.", "downsamp_modules.", "final_layer.", "classifier.")
_BN_MOMENTUM = 0.1


@dataclass(frozen=True)
class StageSpec:
    """One HRNet stage: ``num_modules`` multi-resolution modules.

    Attributes:
        num_modules: Number of HighResolutionModules in the stage.
        num_blocks: Residual blocks per branch.
        num_channels: Channels per branch (high to low resolution).
    """

    num_modules: int
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]


@dataclass(frozen=True)
class HRNetSpec:
    """Architecture of an HRNet: a stem, a bottleneck stage and 3 multi-branch stages."""

    stem_width: int
    stage1_blocks: int
    stage1_channels: int
    stages: tuple[StageSpec, StageSpec, StageSpec]


def _standard(width: int) -> HRNetSpec:
    w = width
    return HRNetSpec(
        stem_width=64,
        stage1_blocks=4,
        stage1_channels=64,
        stages=(
            StageSpec(1, (4, 4), (w, 2 * w)),
            StageSpec(4, (4, 4, 4), (w, 2 * w, 4 * w)),
            StageSpec(3, (4, 4, 4, 4), (w, 2 * w, 4 * w, 8 * w)),
        ),
    )


_SPECS: dict[str, HRNetSpec] = {
    "hrnet_w18": _standard(18),
    "hrnet_w32": _standard(32),
    "hrnet_w48": _standard(48),
    # For 64x64 renders on a CPU: same topology, one module per stage, one block
    # per branch, width 8. ~0.1 M parameters.
    "hrnet_tiny": HRNetSpec(
        stem_width=16,
        stage1_blocks=1,
        stage1_channels=8,
        stages=(
            StageSpec(1, (1, 1), (8, 16)),
            StageSpec(1, (1, 1, 1), (8, 16, 32)),
            StageSpec(1, (1, 1, 1, 1), (8, 16, 32, 64)),
        ),
    ),
}
HRNET_NAMES: tuple[str, ...] = tuple(sorted(_SPECS))


def hrnet_spec(name: str) -> HRNetSpec:
    """Return the architecture of a named HRNet.

    Args:
        name: One of ``"hrnet_w18"``, ``"hrnet_w32"``, ``"hrnet_w48"``, ``"hrnet_tiny"``.

    Returns:
        The `HRNetSpec`.
    """
    if name not in _SPECS:
        raise ValueError(f"unknown HRNet {name!r}; expected one of {sorted(_SPECS)}")
    return _SPECS[name]


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, momentum=_BN_MOMENTUM)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (expansion 1)."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, 3, stride, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = _bn(planes)
        self.downsample = _projection(in_ch, planes, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 - 3x3 - 1x1 residual block (expansion 4)."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = nn.Conv2d(in_ch, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, out_ch, 1, bias=False)
        self.bn3 = _bn(out_ch)
        self.downsample = _projection(in_ch, out_ch, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + identity)


def _projection(in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), _bn(out_ch))


def _make_layer(block: type[nn.Module], in_ch: int, planes: int, blocks: int) -> nn.Sequential:
    layers = [block(in_ch, planes)]
    out_ch = planes * block.expansion
    layers += [block(out_ch, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _conv_bn(in_ch: int, out_ch: int, stride: int, relu: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), _bn(out_ch)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel residual branches followed by all-to-all multi-resolution fusion."""

    def __init__(self, in_channels: tuple[int, ...], spec_blocks, spec_channels) -> None:
        super().__init__()
        n = len(spec_channels)
        self.branches = nn.ModuleList(
            _make_layer(BasicBlock, in_channels[i], spec_channels[i], spec_blocks[i])
            for i in range(n)
        )
        ch = list(spec_channels)
        fuse = []
        for i in range(n):
            row = []
            for j in range(n):
                if j > i:  # lower resolution -> 1x1 conv, then upsample in forward
                    row.append(nn.Sequential(nn.Conv2d(ch[j], ch[i], 1, bias=False), _bn(ch[i])))
                elif j == i:
                    row.append(nn.Identity())
                else:  # higher resolution -> (i - j) strided 3x3 convs
                    steps = [
                        _conv_bn(ch[j], ch[i] if k == i - j - 1 else ch[j], 2, k < i - j - 1)
                        for k in range(i - j)
                    ]
                    row.append(nn.Sequential(*steps))
            fuse.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, layer in enumerate(row):
                if j == i:
                    continue
                z = layer(xs[j])
                if j > i:
                    # Upsample to the exact target size (not a fixed factor) so that
                    # inputs whose sides are not multiples of 32 still work.
                    z = F.interpolate(z, size=y.shape[-2:], mode="nearest")
                y = y + z
            out.append(F.relu(y))
        return out


class HRNet(nn.Module):
    """HRNet backbone returning the four stage-4 feature maps.

    Args:
        spec: Architecture, see [`hrnet_spec`][].
        include_head: Also build timm's ImageNet classification head (unused by
            [`forward`][]; present only so that a full timm state dict loads
            with ``strict=True``).

    Shapes:
        input (B, 3, H, W) -> list of 4 tensors (B, C_k, H / 2^(k+2), W / 2^(k+2)).
    """

    def __init__(self, spec: HRNetSpec, include_head: bool = False) -> None:
        super().__init__()
        self.spec = spec
        s = spec.stem_width
        self.conv1 = nn.Conv2d(3, s, 3, 2, 1, bias=False)
        self.bn1 = _bn(s)
        self.conv2 = nn.Conv2d(s, s, 3, 2, 1, bias=False)
        self.bn2 = _bn(s)
        self.layer1 = _make_layer(Bottleneck, s, spec.stage1_channels, spec.stage1_blocks)
        prev: tuple[int, ...] = (spec.stage1_channels * Bottleneck.expansion,)
        for k, stage in enumerate(spec.stages, start=1):
            setattr(self, f"transition{k}", self._transition(prev, stage.num_channels))
            modules = []
            in_ch = stage.num_channels
            for _ in range(stage.num_modules):
                modules.append(HighResolutionModule(in_ch, stage.num_blocks, stage.num_channels))
            setattr(self, f"stage{k + 1}", nn.Sequential(*modules))
            prev = stage.num_channels
        self.include_head = include_head
        if include_head:
            self._build_head(prev)

    @staticmethod
    def _transition(prev: tuple[int, ...], cur: tuple[int, ...]) -> nn.ModuleList:
        layers: list[nn.Module] = []
        for i, c in enumerate(cur):
            if i < len(prev):
                same = prev[i] == c
                layers.append(nn.Identity() if same else _conv_bn(prev[i], c, 1, True))
            else:
                n_down = i + 1 - len(prev)
                steps = [
                    _conv_bn(prev[-1], c if k == n_down - 1 else prev[-1], 2, True)
                    for k in range(n_down)
                ]
                layers.append(nn.Sequential(*steps))
        return nn.ModuleList(layers)

    def _build_head(self, stage_channels: tuple[int, ...]) -> None:
        head = (32, 64, 128, 256)
        self.incre_modules = nn.ModuleList(
            _make_layer(Bottleneck, c, h, 1) for c, h in zip(stage_channels, head)
        )
        self.downsamp_modules = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(head[i] * 4, head[i + 1] * 4, 3, 2, 1, bias=True),
                _bn(head[i + 1] * 4),
                nn.ReLU(),
            )
            for i in range(len(head) - 1)
        )
        self.final_layer = nn.Sequential(
            nn.Conv2d(head[-1] * 4, 2048, 1, bias=True), _bn(2048), nn.ReLU()
        )
        self.classifier = nn.Linear(2048, 1000)

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of the four outputs of [`forward`][]."""
        return self.spec.stages[-1].num_channels

    def forward(self, x: Tensor) -> list[Tensor]:
        """Compute the stage-4 multi-resolution features.

        Args:
            x: Images (B, 3, H, W), already normalised.

        Returns:
            Four feature maps, highest resolution first.
        """
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for k in (1, 2, 3):
            transition = getattr(self, f"transition{k}")
            xs = [
                xs[i] if isinstance(t, nn.Identity) else t(xs[min(i, len(xs) - 1)])
                for i, t in enumerate(transition)
            ]
            for module in getattr(self, f"stage{k + 1}"):
                xs = module(xs)
        return xs


def load_timm_state_dict(
    model: HRNet, state_dict: Mapping[str, Tensor], strict: bool = True
) -> None:
    """Load a timm ``hrnet_w*`` state dict (e.g. ImageNet weights from the Hub).

    Head keys (`HEAD_PREFIXES`) are dropped when ``model`` was built
    without the head; every other key must match (when ``strict``).

    Args:
        model: The backbone to fill.
        state_dict: Keys and tensors as saved by ``timm.create_model(...).state_dict()``.
        strict: Passed to `torch.nn.Module.load_state_dict` after dropping head keys.
    """
    if not model.include_head:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(HEAD_PREFIXES)}
    model.load_state_dict(state_dict, strict=strict)
