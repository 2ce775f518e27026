"""PSANet: a dilated backbone, the PSA decode head on stage 4, an FCN auxiliary head on stage 3.

    images [N, 3, H, W]
      -> backbone -> stage3 [N, 1024, H/8, W/8], stage4 [N, 2048, H/8, W/8]
      -> decode_head(stage4) -> [N, K, H/8, W/8] -> bilinear -> logits [N, K, H, W]
      -> aux_head(stage3)    -> [N, K, H/8, W/8] -> bilinear -> aux    [N, K, H, W] (training only)

What forward returns depends on the mode, because only training needs the auxiliary logits:
- eval mode: the logits tensor [N, K, H, W];
- train mode: PSANetOutput(out, aux), a named tuple; aux is None without an auxiliary head.
"""

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn


class PSANetOutput(NamedTuple):
    """What PSANet returns in train mode: main logits and auxiliary logits, both [N, K, H, W]."""

    out: torch.Tensor
    aux: Optional[torch.Tensor]


class PSANet(nn.Module):
    """Segmentation network: backbone -> decode head (+ auxiliary head), logits at input size.

    Args:
        backbone: module mapping images to (stage3, stage4) features; it must have
            `in_channels`, `out_channels` (stage-3, stage-4) and `output_stride`.
        decode_head: PSAHead (or FCNHead for the no-attention baseline) on stage 4.
        aux_head: FCNHead on stage 3, or None.
        align_corners: used to upsample the logits to the input size (True in the
            769x769 Cityscapes configs).

    forward(images [N, C, H, W] float) -> logits [N, K, H, W] in eval mode,
    PSANetOutput(out, aux) in train mode.

    Example:
        >>> from psanet_lite.build import build_model
        >>> model = build_model("psanet_lite_context").eval()
        >>> model(torch.randn(2, 3, 64, 64)).shape
        torch.Size([2, 4, 64, 64])
    """

    def __init__(self, backbone, decode_head, aux_head=None, align_corners=False):
        super().__init__()
        self.backbone = backbone
        self.decode_head = decode_head
        self.aux_head = aux_head
        self.align_corners = align_corners

    @property
    def min_input_size(self):
        """Smallest image side accepted: the attention grid must keep at least one cell per side."""
        return self.backbone.output_stride * getattr(self.decode_head, "shrink_factor", 1)

    def forward(self, images):
        images = self._check_images(images)
        size = images.shape[-2:]
        stage3, stage4 = self.backbone(images)  # [N, C3, H/8, W/8], [N, C4, H/8, W/8]
        out = self._upsample(self.decode_head(stage4), size)  # [N, K, H, W]
        if not self.training:
            return out
        aux = None if self.aux_head is None else self._upsample(self.aux_head(stage3), size)
        return PSANetOutput(out, aux)

    def _upsample(self, logits, size):
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=self.align_corners)

    def attention_maps(self, images=None):
        """The softmaxed collect/distribute attention, ``[N, h'*w', h', w']`` per direction.

        With `images`, runs the backbone and the head's attention branches in eval mode
        without gradients (the mode is restored afterwards, BatchNorm statistics are
        untouched) and returns their attention. Without, returns the attention of the
        last forward pass, which must have run with
        `model.decode_head.record_attention = True` (no second forward pass is made).
        Entry [n, t, y, x] is the weight position t (flattened ``y'*w'+x'``) has in the
        output at (y, x) of the shrunk map.

        Example:
            >>> from psanet_lite.build import build_model
            >>> model = build_model("psanet_lite_context")  # output stride 8, no shrink
            >>> maps = model.attention_maps(torch.randn(1, 3, 64, 64))
            >>> sorted(maps), maps["collect"].shape
            (['collect', 'distribute'], torch.Size([1, 64, 8, 8]))
        """
        head = self.decode_head
        if not hasattr(head, "attention_maps"):
            raise ValueError(f"the decode head ({type(head).__name__}) has no attention")
        if images is None:
            return head.attention_maps()
        images = self._check_images(images)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                _, stage4 = self.backbone(images)  # [N, C4, H/8, W/8]
                return head.attention_maps(stage4)
        finally:
            self.train(was_training)

    def _check_images(self, images):
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor [N, C, H, W], got {type(images).__name__}")
        if images.dim() != 4:
            raise ValueError(f"images must have shape [N, C, H, W], got shape {tuple(images.shape)}")
        if not images.is_floating_point():
            raise TypeError(
                f"images must be a floating-point tensor (normalised), got dtype {images.dtype}; "
                "convert with images.float() and normalise first"
            )
        channels = self.backbone.in_channels
        if images.shape[1] != channels:
            raise ValueError(f"images must have {channels} channels, got {images.shape[1]} (shape {tuple(images.shape)})")
        smallest = self.min_input_size
        if min(images.shape[-2:]) < smallest:
            raise ValueError(
                f"images must be at least {smallest}x{smallest} (output stride "
                f"{self.backbone.output_stride} x shrink factor), got {tuple(images.shape[-2:])}"
            )
        weights = next(self.parameters()).dtype
        if images.dtype != weights and not torch.is_autocast_enabled(images.device.type):
            images = images.to(weights)  # e.g. float64 or half pixels for float32 weights
        return images
