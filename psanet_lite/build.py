"""build_model: a preset name or a Config in, a PSANet out (optionally with weights loaded).

    model = build_model("psanet_r50-d8_512x1024_40k_cityscapes")             # random init
    model = build_model("psanet_r50-d8_512x1024_40k_cityscapes",
                        checkpoint="psanet_r50-d8_512x1024_40k_cityscapes_....pth")  # mmseg file
    model = build_model(checkpoint="runs/lite/best.pt")                       # our own file
    model = build_model("psanet_lite_context", psa_type="collect")            # with overrides
"""

import torch

from psanet_lite.checkpoint.mismatch import check_state_dict
from psanet_lite.checkpoint.mmseg import load_mmseg
from psanet_lite.checkpoint.native import is_native_checkpoint
from psanet_lite.checkpoint.pretrained import load_backbone_weights
from psanet_lite.checkpoint.safe_load import safe_torch_load
from psanet_lite.configs import Config, get_config
from psanet_lite.models import (
    FCNHead,
    GlobalPoolHead,
    NonLocalHead,
    PPMHead,
    PSAHead,
    PSANet,
    ResNetV1c,
    TorchvisionResNet,
    resnet_lite,
)
from psanet_lite.models.fcn_head import matching_fcn_channels

# The related-work heads of the ablation, built at the width whose parameter count
# matches the PSA head they replace (see _matched_width).
CONTEXT_HEADS = {"pool": GlobalPoolHead, "ppm": PPMHead, "nonlocal": NonLocalHead}


def build_model(name_or_config=None, checkpoint=None, trust_pickle=False, **overrides):
    """Build PSANet from a preset name or a Config, with overrides, optionally loading weights.

    Args:
        name_or_config: a preset name (psanet_lite.configs.names()) or a Config. May be
            None when `checkpoint` is a psanet-lite checkpoint: its stored config is used.
        checkpoint: path (or loaded dict) of weights: a psanet-lite checkpoint, or an
            mmsegmentation checkpoint (loaded with load_mmseg's key map).
        trust_pickle: allow full unpickling of the checkpoint file (trusted files only).
        **overrides: config changes, as in Config.replace (e.g. num_classes=5,
            psa_type='collect', decode_head='fcn').

    Returns:
        PSANet with `model.config` set to the Config it was built from; in train mode.
        Without a checkpoint, model.backbone starts from cfg.model.backbone_weights if set.

    Example:
        >>> model = build_model("psanet_lite_context", num_classes=6)
        >>> model.eval()(torch.randn(1, 3, 96, 96)).shape
        torch.Size([1, 6, 96, 96])
    """
    state = None
    if checkpoint is not None:
        state = checkpoint if isinstance(checkpoint, dict) else safe_torch_load(checkpoint, trust_pickle=trust_pickle)
    if name_or_config is None:
        if not is_native_checkpoint(state):
            if checkpoint is None:
                raise ValueError("give a preset name, a Config or a psanet-lite checkpoint")
            where = "the checkpoint" if isinstance(checkpoint, dict) else checkpoint
            raise ValueError(f"{where} carries no config (only psanet-lite checkpoints do): give its preset "
                             "name or Config (--config PRESET on the command line)")
        config = Config.from_dict(state["config"])
    elif isinstance(name_or_config, Config):
        config = name_or_config
    elif isinstance(name_or_config, str):
        config = get_config(name_or_config)
    else:
        raise TypeError(f"name_or_config must be a preset name or a Config, got {type(name_or_config).__name__}")
    if overrides:
        config = config.replace(**overrides)

    model = model_from_config(config)
    if state is None:
        if config.model.backbone_weights:
            load_backbone_weights(model.backbone, config.model.backbone_weights, trust_pickle=trust_pickle)
        if config.model.load_from:
            try:
                state = safe_torch_load(config.model.load_from, trust_pickle=trust_pickle)
            except FileNotFoundError as error:
                raise FileNotFoundError(f"model.load_from: {error}") from None
            _load_native(model, state, f"model.load_from ({config.model.load_from})")
    elif is_native_checkpoint(state):
        _load_native(model, state, "psanet-lite checkpoint")
    else:
        load_mmseg(model, state)
    return model


def _load_native(model, state, what):
    """Load a psanet-lite checkpoint's weights into `model`, whose architecture they must fit."""
    if not is_native_checkpoint(state):
        raise ValueError(f"{what} is not a psanet-lite checkpoint (a file written by psanet-lite train)")
    check_state_dict(state["model"], {k: v.shape for k, v in model.state_dict().items()}, what)
    model.load_state_dict(state["model"])


def model_from_config(config):
    """A freshly initialised PSANet for `config` (a Config); no weights are loaded."""
    m = config.model
    num_classes = config.data.num_classes
    backbone = build_backbone(m.backbone, m.depth, m.in_channels)
    stage3_channels, stage4_channels = backbone.out_channels
    if m.decode_head == "psa":
        decode_head = _psa_head(m, stage4_channels, num_classes)
        if m.compact:
            _check_compact_mask(decode_head, config.data.crop_size, backbone.output_stride)
    else:
        decode_head = _baseline_head(m, stage4_channels, num_classes)
    aux_head = None
    if m.aux_head:
        aux_head = FCNHead(stage3_channels, m.aux_channels, num_classes, num_convs=1, concat_input=False, dropout=0.1)
    model = PSANet(backbone, decode_head, aux_head, align_corners=m.align_corners)
    model.config = config
    return model


def _baseline_head(m, in_channels, num_classes):
    """The decode head m.decode_head names other than 'psa', as wide as the PSA head it replaces."""
    with torch.device("meta"):
        target = _parameters(_psa_head(m, in_channels, num_classes, fused=False))
    if m.decode_head == "fcn":
        channels = m.fcn_channels or matching_fcn_channels(target, in_channels, num_classes)
        return FCNHead(in_channels, channels, num_classes, num_convs=2, concat_input=True, dropout=m.dropout)
    kind = CONTEXT_HEADS[m.decode_head]
    channels = _matched_width(lambda width: kind(in_channels, width, num_classes, dropout=m.dropout), target)
    return kind(in_channels, channels, num_classes, dropout=m.dropout)


def _matched_width(make_head, target, multiple_of=8):
    """The multiple of `multiple_of` whose head (make_head(width)) has the parameter count
    closest to `target`; heads are built on the meta device (no memory), widths searched
    by bisection (the count grows with the width)."""
    def size(width):
        with torch.device("meta"):
            return _parameters(make_head(width * multiple_of))

    low, high = 1, 2
    while size(high) < target:
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if size(middle) < target else (low, middle)
    return multiple_of * min((low, high), key=lambda w: abs(size(w) - target))


def _parameters(module):
    return sum(p.numel() for p in module.parameters())


def build_backbone(kind, depth=50, in_channels=3):
    """'resnetv1c' (ResNetV1c-D8), 'torchvision' (dilated torchvision ResNet) or 'lite'.

    >>> build_backbone("lite").out_channels
    (128, 256)
    """
    if kind == "resnetv1c":
        return ResNetV1c(depth=depth, in_channels=in_channels)
    if kind == "torchvision":
        return TorchvisionResNet(depth=depth, in_channels=in_channels)
    if kind == "lite":
        return resnet_lite(in_channels=in_channels)
    raise ValueError(f"backbone must be 'resnetv1c', 'torchvision' or 'lite', got {kind!r}")


def _check_compact_mask(head, crop_size, output_stride):
    """compact=True predicts one attention channel per position of the crop's attention grid."""
    feature = [-(-side // output_stride) for side in crop_size]  # ceil: every stride-2 layer pads
    h, w, _ = head.attention_grid(*feature)
    mh, mw = head.mask_size
    if mh * mw != h * w:
        raise ValueError(
            f"compact=True needs mask_size with mh*mw == h'*w' = {h}*{w} for crop {tuple(crop_size)} "
            f"(attention grid {h}x{w}), got mask_size {head.mask_size}; use mask_size=({h}, {w})"
        )


def _psa_head(m, in_channels, num_classes, fused=None):
    return PSAHead(
        in_channels=in_channels,
        channels=m.channels,
        num_classes=num_classes,
        mask_size=m.mask_size,
        psa_type=m.psa_type,
        compact=m.compact,
        shrink_factor=m.shrink_factor,
        normalization_factor=m.normalization_factor,
        psa_softmax=m.psa_softmax,
        softmax=m.softmax,
        dropout=m.dropout,
        proj_padding=m.proj_padding,
        align_corners=m.align_corners,
        backend=m.psa_backend,
        fused=m.fused if fused is None else fused,
    )
