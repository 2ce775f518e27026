"""Load and write PSANet checkpoints in mmsegmentation's format, by an explicit key map.

mmsegmentation names (EncoderDecoder -> ResNetV1c / PSAHead / FCNHead, ConvModule leaves
`.conv.weight`, `.bn.{weight,bias,running_mean,running_var,num_batches_tracked}`):

    ours                                   mmsegmentation
    backbone.stem.conv1 / bn1              backbone.stem.0 / stem.1
    backbone.stem.conv2 / bn2              backbone.stem.3 / stem.4
    backbone.stem.conv3 / bn3              backbone.stem.6 / stem.7
    backbone.layer{1-4}.*                  backbone.layer{1-4}.*           (same Bottleneck names)
    decode_head.collect.reduce / attention decode_head.reduce / attention
    decode_head.distribute.reduce / ...    decode_head.reduce_p / attention_p  ('bi')
                                           decode_head.reduce / attention      ('distribute' only)
    decode_head.project                    decode_head.proj
    decode_head.fuse                       decode_head.bottleneck
    decode_head.classifier                 decode_head.conv_seg
    aux_head.convs.0                       auxiliary_head.convs.0
    aux_head.classifier                    auxiliary_head.conv_seg

An FCN decode head maps decode_head.convs/conv_cat/classifier to convs/conv_cat/conv_seg.
Published files wrap the weights as {'state_dict': ..., 'meta': ...}; both wrapped and
bare state dicts are accepted.
"""

from collections import OrderedDict

from psanet_lite.checkpoint.atomic import atomic_save
from psanet_lite.checkpoint.mismatch import check_state_dict
from psanet_lite.checkpoint.safe_load import safe_torch_load
from psanet_lite.models import FCNHead, PSAHead, ResNetV1c

# Our named deep stem -> the indices of mmsegmentation's nn.Sequential stem.
STEM_KEYS = {
    "stem.conv1": "stem.0",
    "stem.bn1": "stem.1",
    "stem.conv2": "stem.3",
    "stem.bn2": "stem.4",
    "stem.conv3": "stem.6",
    "stem.bn3": "stem.7",
}


def backbone_key(key):
    """Name of a ResNetV1c parameter (without the 'backbone.' prefix) in mmsegmentation.

    >>> backbone_key("stem.bn2.running_mean"), backbone_key("layer3.0.downsample.1.weight")
    ('stem.4.running_mean', 'layer3.0.downsample.1.weight')
    """
    for ours, theirs in STEM_KEYS.items():
        if key.startswith(ours + "."):
            return theirs + key[len(ours):]
    return key


def _prefix_rules(model):
    """(our prefix, mmsegmentation prefix) pairs for the heads of `model`."""
    head = model.decode_head
    if isinstance(head, PSAHead):
        suffix = {"collect": "", "distribute": "_p" if head.psa_type == "bi" else ""}
        rules = []
        for direction in head.directions:
            rules += [
                (f"decode_head.{direction}.reduce.", f"decode_head.reduce{suffix[direction]}."),
                (f"decode_head.{direction}.attention.", f"decode_head.attention{suffix[direction]}."),
            ]
        rules += [
            ("decode_head.project.", "decode_head.proj."),
            ("decode_head.fuse.", "decode_head.bottleneck."),
            ("decode_head.classifier.", "decode_head.conv_seg."),
        ]
    elif isinstance(head, FCNHead):
        rules = [
            ("decode_head.convs.", "decode_head.convs."),
            ("decode_head.conv_cat.", "decode_head.conv_cat."),
            ("decode_head.classifier.", "decode_head.conv_seg."),
        ]
    else:
        raise ValueError(f"no mmsegmentation names for a decode head of type {type(head).__name__}")
    return rules + [
        ("aux_head.convs.", "auxiliary_head.convs."),
        ("aux_head.classifier.", "auxiliary_head.conv_seg."),
    ]


def mmseg_key_map(model):
    """OrderedDict {our state-dict key: mmsegmentation key} covering every entry of `model`.

    Needs the ResNetV1c backbone (the one mmsegmentation's PSANet checkpoints use).

    >>> from psanet_lite.build import build_model
    >>> mmseg_key_map(build_model("psanet_r50-d8_512x1024_40k_cityscapes"))["decode_head.fuse.conv.weight"]
    'decode_head.bottleneck.conv.weight'
    """
    if not isinstance(model.backbone, ResNetV1c):
        raise ValueError(
            "mmsegmentation's PSANet checkpoints use the ResNetV1c backbone; this model has "
            f"{type(model.backbone).__name__} (build it with backbone='resnetv1c')"
        )
    rules = _prefix_rules(model)
    mapping = OrderedDict()
    for key in model.state_dict():
        if key.startswith("backbone."):
            mapping[key] = "backbone." + backbone_key(key[len("backbone."):])
            continue
        for ours, theirs in rules:
            if key.startswith(ours):
                mapping[key] = theirs + key[len(ours):]
                break
        else:
            raise ValueError(f"no mmsegmentation name for parameter {key!r}")
    return mapping


def read_state_dict(source, trust_pickle=False):
    """(state_dict, meta) from a path, a {'state_dict', 'meta'} checkpoint or a bare state dict."""
    checkpoint = safe_torch_load(source, trust_pickle=trust_pickle) if not isinstance(source, dict) else source
    if not isinstance(checkpoint, dict):
        raise TypeError(f"a checkpoint must hold a dict, got {type(checkpoint).__name__}")
    if "state_dict" in checkpoint and isinstance(checkpoint["state_dict"], dict):
        return checkpoint["state_dict"], checkpoint.get("meta")
    return checkpoint, None


def load_mmseg(model, path_or_state_dict, trust_pickle=False):
    """Load an mmsegmentation PSANet checkpoint into `model` (built from the matching preset).

    Every tensor of the model must be in the file with the same shape and the file may
    hold nothing else; otherwise a CheckpointMismatchError lists the missing,
    unexpected and mis-shaped keys (in mmsegmentation's names).

    Args:
        model: a PSANet with the ResNetV1c backbone.
        path_or_state_dict: a file path, a {'state_dict': ..., 'meta': ...} dict or a
            bare state dict with mmsegmentation's keys.
        trust_pickle: allow unpickling arbitrary objects from the file (trusted files only).

    Returns:
        The checkpoint's 'meta' dict (None when there is none).

    Example:
        >>> from psanet_lite import build_model
        >>> model = build_model("psanet_r50-d8_512x1024_40k_cityscapes")
        >>> load_mmseg(model, "psanet_r50-d8_512x1024_40k_cityscapes_20200606_103117-99fac37c.pth")  # doctest: +SKIP
    """
    state, meta = read_state_dict(path_or_state_dict, trust_pickle=trust_pickle)
    mapping = mmseg_key_map(model)
    own = model.state_dict()
    check_state_dict(state, {theirs: own[ours].shape for ours, theirs in mapping.items()}, "mmsegmentation checkpoint")
    model.load_state_dict({ours: state[theirs] for ours, theirs in mapping.items()}, strict=True)
    return meta


def export_mmseg(model, path=None, meta=None):
    """The model's weights as an mmsegmentation checkpoint {'state_dict': ..., 'meta': ...}.

    Tensors are copied to the CPU. With `path`, the checkpoint is also written there
    (atomically). The reverse of load_mmseg: load_mmseg(model, export_mmseg(model)) is exact.

    Example:
        >>> from psanet_lite import build_model
        >>> model = build_model("psanet_r50-d8_512x1024_40k_cityscapes")
        >>> export_mmseg(model, "psanet_r50_mmseg.pth")["state_dict"]["backbone.stem.0.weight"].shape
        torch.Size([32, 3, 3, 3])
        >>> load_mmseg(model, "psanet_r50_mmseg.pth")  # the meta dict given to export_mmseg
        {}
    """
    mapping = mmseg_key_map(model)
    own = model.state_dict()
    checkpoint = {
        "state_dict": OrderedDict((theirs, own[ours].detach().cpu().clone()) for ours, theirs in mapping.items()),
        "meta": dict(meta or {}),
    }
    if path is not None:
        atomic_save(checkpoint, path)
    return checkpoint
