"""The PSA head: point-wise spatial attention in two directions (Zhao et al. 2018, Sec. 3-4).

Every position of the stage-4 map predicts, from its own features, an attention mask
over an mh x mw window around it (the "over-completed" map). PSAMask turns those masks
into an [HW, HW] matrix; a softmax normalises each position's weights; one matrix
product then mixes information across the whole map:

- collect:    position s gathers from every t,     out[:, s] = sum_t x[:, t] * A_c[t, s]
- distribute: position t spreads to every s,       out[:, s] = sum_t x[:, t] * A_d[t, s]
              where A_d is predicted at the sending position t.

The two directions have separate weights (in mmsegmentation: reduce/attention for
collect, reduce_p/attention_p for distribute); their results are concatenated,
projected back to the input width, concatenated with the input and fused by a 3x3
convolution before the classifier.

Attention runs on a map shrunk by `shrink_factor` (2 in every published config) to cut
the HW x HW cost by 16. This module reproduces mmsegmentation's PSAHead number for
number, including two of its quirks (see psa-semantics in the book):
- the 1x1 projection is declared with padding 1, so it outputs an (h'+2) x (w'+2) map
  that is then resized; `proj_padding=0` gives the authors' 1x1 projection instead
  (published checkpoints were trained with 1: keep it to reproduce their numbers);
- the softmax runs over the zero-filled [HW, HW] buffer, so window cells outside the
  map still take an exp(0) share. `softmax='window'` restricts it to the cells that
  land inside the map (an option beyond the reference).
The head holds the layers; the attention itself (mask, softmax, matrix product and
the choice of implementation) is psanet_lite.ops.psa_aggregate.
"""

import torch
import torch.nn.functional as F
from torch import nn

from psanet_lite.models.conv_bn_relu import ConvBNReLU
from psanet_lite.ops import AGGREGATE_BACKENDS, psa_aggregate, psa_attention, resolve_mask_size
from psanet_lite.ops.aggregate_logits import over_completed_map
from psanet_lite.ops.attention import check_softmax
from psanet_lite.ops.backends import FUSED_BACKENDS, check_backend, choose_backend

PSA_TYPES = ("collect", "distribute", "bi")
DIRECTIONS = ("collect", "distribute")


class PSABranch(nn.Module):
    """One information-flow direction: reduce the input, predict the over-completed map.

    `reduce`: 1x1 ConvBNReLU in_channels -> channels.
    `attention`: 1x1 ConvBNReLU channels -> channels, then a 1x1 conv to mh*mw
    channels without bias (one weight per mask cell).
    """

    def __init__(self, in_channels, channels, attention_channels):
        super().__init__()
        self.reduce = ConvBNReLU(in_channels, channels, 1)
        self.attention = nn.Sequential(
            ConvBNReLU(channels, channels, 1),
            nn.Conv2d(channels, attention_channels, 1, bias=False),
        )


class PSAHead(nn.Module):
    """Point-wise spatial attention decode head with mmsegmentation's PSAHead semantics.

    Args:
        in_channels: channels of the backbone's stage-4 map (2048 for ResNet-50/101).
        channels: width inside the head (512).
        num_classes: output channels of the classifier.
        mask_size: (mh, mw) or int; window of the over-completed map, in cells of
            the shrunk map. mmsegmentation uses 97 (Cityscapes, VOC) and 66 (ADE20K).
        psa_type: 'collect', 'distribute' or 'bi' (both; mmsegmentation's 'bi-direction').
        compact: predict ``h'*w'`` attention channels indexed by absolute position instead
            of a window (needs ``mh*mw == h'*w'``); like mmsegmentation, the collect map is
            transposed in 'collect' mode and the distribute map in 'bi' mode.
        shrink_factor: the attention runs on a map shrunk by this factor. When both
            sides are odd the shrunk side is (h-1)//s+1 with align_corners=True,
            otherwise h//s with align_corners=False (as in mmsegmentation).
        normalization_factor: the aggregated features are divided by it; None means mh*mw.
        psa_softmax: mmsegmentation's name; False means softmax=None.
        softmax: 'reference' (over the zero-filled [HW, HW] buffer, as published),
            'window' (over the window cells inside the map only) or None (no softmax).
        dropout: Dropout2d probability before the classifier.
        proj_padding: padding of the 1x1 projection; 1 as published, 0 for the authors'
            code. Published checkpoints load with either, but only 1 reproduces them.
        align_corners: used for resizing when shrink_factor is 1.
        backend: psanet_lite.ops.psa_aggregate's backend: 'reference', 'dense',
            'torch' or 'cupy'; None picks the fastest (see psanet_lite/ops/backends.py).
        fused: with backend None, pick the memory-saving route that never stores the
            attention matrix ('cupy' on CUDA when CuPy works, else 'torch'); not with compact.
            On these routes the head hands over the attention branch's last convolution input
            and weight, and the logits are computed on the fly: the over-completed map is not
            stored either ('torch' always; 'cupy' for float16 and bfloat16, as under AMP, on
            tensor cores; for other dtypes 'cupy' builds the map from them).

    Input [N, in_channels, H, W] -> logits [N, num_classes, H, W].

    Example:
        >>> head = PSAHead(in_channels=64, channels=16, num_classes=5, mask_size=7)
        >>> head(torch.randn(2, 64, 8, 8)).shape
        torch.Size([2, 5, 8, 8])
    """

    def __init__(
        self,
        in_channels=2048,
        channels=512,
        num_classes=19,
        mask_size=(97, 97),
        psa_type="bi",
        compact=False,
        shrink_factor=2,
        normalization_factor=1.0,
        psa_softmax=True,
        softmax="reference",
        dropout=0.1,
        proj_padding=1,
        align_corners=False,
        backend=None,
        fused=False,
    ):
        super().__init__()
        if psa_type == "bi-direction":
            psa_type = "bi"
        if psa_type not in PSA_TYPES:
            raise ValueError(f"psa_type must be one of {PSA_TYPES} (or 'bi-direction'), got {psa_type!r}")
        check_softmax(softmax)
        check_backend(backend, AGGREGATE_BACKENDS)
        if mask_size is None:
            raise ValueError("mask_size must be an int or a pair (mh, mw): the head needs mh*mw channels")
        mh, mw = resolve_mask_size(mask_size, 1, 1)
        if not isinstance(shrink_factor, int) or shrink_factor < 1:
            raise ValueError(f"shrink_factor must be a positive int, got {shrink_factor!r}")
        if proj_padding not in (0, 1):
            raise ValueError(f"proj_padding must be 1 (published) or 0 (authors' code), got {proj_padding!r}")
        if (fused or backend in FUSED_BACKENDS) and compact:
            raise ValueError("the fused routes aggregate windowed masks; they do not apply to compact=True")
        if fused and backend is not None and backend not in FUSED_BACKENDS:
            raise ValueError(f"fused=True needs backend None, 'torch' or 'cupy', got {backend!r}")
        self.psa_type = psa_type
        self.mask_size = (mh, mw)
        self.compact = compact
        self.shrink_factor = shrink_factor
        self.normalization_factor = float(mh * mw if normalization_factor is None else normalization_factor)
        self.softmax = softmax if psa_softmax else None
        self.align_corners = align_corners
        self.backend = backend
        self.fused = fused
        # When True, forward keeps the (detached) over-completed maps for attention_maps().
        self.record_attention = False
        self.recorded_attention = {}

        directions = DIRECTIONS if psa_type == "bi" else (psa_type,)
        self.collect = PSABranch(in_channels, channels, mh * mw) if "collect" in directions else None
        self.distribute = PSABranch(in_channels, channels, mh * mw) if "distribute" in directions else None
        self.project = ConvBNReLU(channels * len(directions), in_channels, 1, padding=proj_padding)
        self.fuse = ConvBNReLU(2 * in_channels, channels, 3, padding=1)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Conv2d(channels, num_classes, 1)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    @property
    def directions(self):
        """The directions this head computes, in concatenation order."""
        return tuple(d for d in DIRECTIONS if getattr(self, d) is not None)

    def attention_grid(self, height, width):
        """(h', w', align_corners) of the shrunk map the attention runs on, for an H x W input map.

        >>> PSAHead(64, 16, 2, mask_size=3).attention_grid(97, 97)
        (49, 49, True)
        >>> PSAHead(64, 16, 2, mask_size=3).attention_grid(64, 128)
        (32, 64, False)
        """
        s = self.shrink_factor
        if s == 1:
            return height, width, self.align_corners
        if height < s or width < s:
            raise ValueError(
                f"the feature map ({height}x{width}) must be at least shrink_factor={s} on each side"
            )
        if height % s and width % s:
            return (height - 1) // s + 1, (width - 1) // s + 1, True
        return height // s, width // s, False

    @property
    def psa_softmax(self):
        """mmsegmentation's name: True when the attention is softmaxed."""
        return self.softmax is not None

    def forward(self, x):
        height, width = x.shape[-2:]  # x: [N, Cin, H, W]
        backend = choose_backend(x.device, self.backend, AGGREGATE_BACKENDS, save_memory=self.fused)
        # The fused routes take the last convolution's input and weight instead of its
        # output: they compute the logits on the fly and never store the map ('cupy' for
        # 16-bit tensors; for other dtypes it builds the map from them).
        factors = backend in FUSED_BACKENDS
        recorded, aggregated = {}, []
        for direction, features, logits in self._branches(x, factors):
            if self.record_attention:
                recorded[direction] = (over_completed_map(*logits) if factors else logits).detach()
            aggregated.append(psa_aggregate(
                features, logits, self._mode(direction), self.mask_size, self.softmax,
                self.normalization_factor, backend, self.compact,
            ))  # [N, C, h', w']
        self.recorded_attention = recorded
        _, _, align_corners = self.attention_grid(height, width)
        out = self.project(torch.cat(aggregated, dim=1))  # [N, Cin, h'+2p, w'+2p]
        out = F.interpolate(out, size=(height, width), mode="bilinear", align_corners=align_corners)
        out = self.fuse(torch.cat([x, out], dim=1))  # [N, C, H, W]
        return self.classifier(self.dropout(out))  # [N, num_classes, H, W]

    def _branches(self, x, factors=False):
        """Yield (direction, features [N, C, h', w'], over-completed map [N, mh*mw, h', w']);
        with `factors`, the map's factors (input [N, C, h', w'], weight [mh*mw, C]) instead."""
        h, w, align_corners = self.attention_grid(*x.shape[-2:])
        for direction in self.directions:
            branch = getattr(self, direction)
            features = branch.reduce(x)  # [N, C, H, W]
            if self.shrink_factor != 1:
                features = F.interpolate(features, size=(h, w), mode="bilinear", align_corners=align_corners)
            if factors:
                hidden, last = branch.attention
                reduced, weight = hidden(features), last.weight.flatten(1)
                # Under autocast the convolutions run in 16 bits and the weight stays float32:
                # the three tensors take the dtype the 1x1 convolution would have computed in.
                features, weight = features.to(reduced.dtype), weight.to(reduced.dtype)
                yield direction, features, (reduced, weight)
            else:
                yield direction, features, branch.attention(features)

    def _mode(self, direction):
        """The ops mode of a direction. ops' compact layout follows mmsegmentation's 'bi' mode
        (distribute transposed); a one-direction compact head transposes the other way round."""
        if self.compact and self.psa_type != "bi":
            return "distribute" if direction == "collect" else "collect"
        return direction

    def attention_matrix(self, logits, direction):
        """Turn the over-completed map into the attention used by the matrix product.

        Args:
            logits: ``[N, mh*mw, h', w']`` output of a branch's `attention` (``h'*w'`` channels
                when compact).
            direction: 'collect' or 'distribute'.

        Returns:
            ``[N, h'*w', h', w']``: as an [N, HW, HW] matrix, entry (t, s) is the weight of
            position t in the output at position s; each column sums to 1 when
            psa_softmax is on.
        """
        return psa_attention(logits, self._mode(direction), self.mask_size, self.softmax, self.compact)

    @torch.no_grad()
    def attention_maps(self, x=None):
        """Attention matrices ``[N, h'*w', h', w']`` per direction: of the stage-4 map `x`,
        or without `x` of the last forward pass run with record_attention on.

        Returns a dict {'collect': ..., 'distribute': ...} with the directions this head has.

        >>> head = PSAHead(in_channels=64, channels=16, num_classes=5, mask_size=7).eval()
        >>> head.attention_maps(torch.randn(1, 64, 8, 8))["collect"].shape
        torch.Size([1, 16, 4, 4])
        """
        if x is not None:
            return {d: self.attention_matrix(logits, d) for d, _, logits in self._branches(x)}
        if not self.recorded_attention:
            raise RuntimeError(
                "no attention recorded: set record_attention = True before the forward pass "
                "(or call PSANet.attention_maps(images))"
            )
        return {d: self.attention_matrix(logits, d) for d, logits in self.recorded_attention.items()}
