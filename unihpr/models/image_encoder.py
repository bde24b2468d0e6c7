"""Image encoder: HRNet + pooled stage-4 features + linear projection (paper §III-A)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unihpr._validate import check_shape, check_tensor
from unihpr.models.hrnet import HRNet, hrnet_spec

__all__ = ["ImageEncoder"]

# ImageNet statistics: the timm HRNet weights were trained on images normalised with them.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class ImageEncoder(nn.Module):
    """Embed RGB crops into a D-dimensional vector.

    The four stage-4 HRNet branches are average-pooled globally, concatenated
    (``sum(C_k)`` features, e.g. 480 for W32, 720 for W48) and projected to D.

    Args:
        backbone: HRNet name, see `unihpr.models.hrnet.hrnet_spec`.
        embed_dim: Output dimension D.
        image_size: Expected input (H, W); checked on every call.
    """

    def __init__(
        self, backbone: str = "hrnet_w32", embed_dim: int = 512, image_size=(256, 192)
    ) -> None:
        super().__init__()
        self.backbone = HRNet(hrnet_spec(backbone), include_head=False)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.embed_dim = embed_dim
        self.proj = nn.Linear(sum(self.backbone.out_channels), embed_dim)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor, normalize: bool = True) -> Tensor:
        """Encode images.

        Args:
            images: (B, 3, H, W) float RGB in [0, 1], (H, W) = ``image_size``.
            normalize: L2-normalise the output.

        Returns:
            Embeddings (B, D).
        """
        check_tensor("images", images, floating=True)
        h, w = self.image_size
        check_shape("images", images, (None, 3, h, w), f"(B, 3, H={h}, W={w})")
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        feats = self.backbone(x)
        pooled = torch.cat([f.mean(dim=(-2, -1)) for f in feats], dim=-1)
        out = self.proj(pooled)
        return F.normalize(out, dim=-1) if normalize else out
