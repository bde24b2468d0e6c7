"""Small stand-ins that follow the interface contract of unihpr.models / unihpr.losses.

They let the training code be tested quickly and independently of the real
(larger) modules: a model with the ``encode_*`` methods and the five
sub-modules, decoders with ``forward(embedding, source)`` / ``loss(...)``, a
pairwise InfoNCE criterion with learnable clamped temperature, and a dataset
of dict samples.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from unihpr.models import UniHPR

J = 5
D = 8
HW = (8, 8)


class FakeConfig:
    num_joints = J
    embed_dim = D
    image_size = HW


class Decoder(nn.Module):
    def __init__(self, out_dims: int) -> None:
        super().__init__()
        self.out_dims = out_dims
        self.token = nn.Embedding(3, D)
        self.net = nn.Sequential(nn.Linear(D, 16), nn.ReLU(), nn.Linear(16, J * out_dims))

    def forward(self, embedding, source):
        idx = ("image", "pose2d", "pose3d").index(source)
        return self.net(embedding + self.token.weight[idx]).view(-1, J, self.out_dims)

    def loss(self, embedding, source, target, mask=None):
        return ((self(embedding, source) - target) ** 2).sum(-1).mean()


class FakeUniHPR(nn.Module):
    """BatchNorm in every encoder so that frozen-in-eval-mode can be checked."""

    def __init__(self) -> None:
        super().__init__()
        self.config = FakeConfig()
        self.image_encoder = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, D),
        )  # fmt: skip
        self.pose2d_encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(J * 2 + 4, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, D)
        )
        self.pose3d_encoder = nn.Sequential(
            nn.Flatten(), nn.Linear(J * 3, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, D)
        )
        self.decoder3d = Decoder(3)
        self.decoder2d = Decoder(2)

    def encode_image(self, images, normalize=True):
        return F.normalize(self.image_encoder(images), dim=-1)

    def encode_pose2d(self, pose2d, bbox=None, mask=None, normalize=True):
        if bbox is None:
            bbox = torch.cat([pose2d.amin(1), pose2d.amax(1)], -1)
        x = torch.cat([pose2d.flatten(1) / 100.0, bbox / 100.0], -1)
        return F.normalize(self.pose2d_encoder(x), dim=-1)

    def encode_pose3d(self, pose3d, mask=None, normalize=True):
        return F.normalize(self.pose3d_encoder(pose3d), dim=-1)

    # The real model's modality switch, written once (it calls the encode_* methods above).
    embed = UniHPR.embed

    def decode(self, embedding, source, dims=3, **kwargs):
        return (self.decoder3d if dims == 3 else self.decoder2d)(embedding, source)

    def estimate_3d(self, image=None, pose2d=None, bbox=None, mask=None):
        if image is not None:
            return self.decoder3d(self.encode_image(image), "image")
        return self.decoder3d(self.encode_pose2d(pose2d, bbox, mask), "pose2d")


class Temperature(nn.Module):
    def __init__(self, init, lo, hi):
        super().__init__()
        self.lo, self.hi = lo, hi
        self.log_tau = nn.Parameter(torch.tensor(math.log(init)))

    def forward(self):
        return self.log_tau.exp().clamp(self.lo, self.hi)

    @torch.no_grad()
    def project_(self):
        self.log_tau.clamp_(math.log(self.lo), math.log(self.hi))


class PairCriterion(nn.Module):
    """Sum of the pairwise InfoNCE terms over the given modalities (contract signature)."""

    def __init__(self, init=0.1, lo=0.01, hi=1e4):
        super().__init__()
        self.tau = Temperature(init, lo, hi)

    def forward(self, image=None, pose2d=None, pose3d=None, *, generator=None,
                return_diagnostics=False):  # fmt: skip
        given = {k: v for k, v in (("image", image), ("pose2d", pose2d), ("pose3d", pose3d))
                 if v is not None}  # fmt: skip
        names = list(given)
        tau = self.tau()
        loss = 0.0
        diag = {}
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                s = given[a] @ given[b].T
                t = torch.arange(len(s))
                loss = loss + 0.5 * (F.cross_entropy(s / tau, t) + F.cross_entropy(s.T / tau, t))
                diag[f"cos/{a}-{b}"] = float(s.diagonal().mean().detach())
        diag["tau/pair"] = float(tau.detach())
        return (loss, diag) if return_diagnostics else loss


class PoseImageSet(Dataset):
    """Random poses with a 2D projection, a bbox, and optionally a tiny image."""

    def __init__(self, n: int = 32, images: bool = True, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.pose3d = 0.3 * torch.randn(n, J, 3, generator=g)
        self.pose3d -= self.pose3d[:, :1].clone()
        self.pose2d = 100 + 200 * self.pose3d[..., :2]
        self.bbox = torch.cat([self.pose2d.amin(1) - 5, self.pose2d.amax(1) + 5], -1)
        self.images = torch.rand(n, 3, *HW, generator=g) if images else None

    def __len__(self) -> int:
        return len(self.pose3d)

    def __getitem__(self, i: int) -> dict:
        out = {
            "pose3d": self.pose3d[i],
            "pose2d": self.pose2d[i],
            "bbox": self.bbox[i],
            "subject": "S1",
            "action": "Walk",
            "index": i,
        }
        if self.images is not None:
            out["image"] = self.images[i]
        return out


def target2d(pose2d, bbox, mask):
    if bbox is None:  # the stages use the keypoints' own box
        bbox = torch.cat([pose2d.amin(1), pose2d.amax(1)], -1)
    centre = 0.5 * (bbox[:, :2] + bbox[:, 2:])
    half = 0.5 * (bbox[:, 2:] - bbox[:, :2]).amax(-1)
    return (pose2d - centre[:, None]) / half[:, None, None]
