"""Load ImageNet weights from disk into a backbone (the usual starting point for training).

- TorchvisionResNet: a torchvision state dict (e.g. resnet50-0676ba61.pth from
  torchvision's model zoo, if you have it); `fc.*` is dropped.
- ResNetV1c: mmsegmentation's resnet50_v1c / resnet101_v1c ImageNet weights (keys
  stem.0.*, layer1.*, ... with or without a 'backbone.' prefix); classifier keys dropped.
Nothing is downloaded; the file must already be on disk.
"""

from psanet_lite.checkpoint.mismatch import check_state_dict
from psanet_lite.checkpoint.mmseg import backbone_key, read_state_dict
from psanet_lite.models import ResNetV1c, TorchvisionResNet

# Keys of ImageNet classifiers that a segmentation backbone does not have.
_CLASSIFIER_PREFIXES = ("fc.", "head.")


def load_backbone_weights(backbone, path, trust_pickle=False):
    """Load ImageNet weights from `path` into `backbone`, checking every key and shape.

    With a backbone whose first convolution takes other than 3 input channels, that
    convolution keeps its random initialisation.

    Raises CheckpointMismatchError listing missing, unexpected and mis-shaped keys.

    Example:
        >>> backbone = TorchvisionResNet(50)
        >>> load_backbone_weights(backbone, "resnet50-0676ba61.pth")  # doctest: +SKIP
    """
    state, _ = read_state_dict(path, trust_pickle=trust_pickle)
    if all(key.startswith("backbone.") for key in state):
        state = {key[len("backbone."):]: value for key, value in state.items()}
    state = {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER_PREFIXES)}
    if isinstance(backbone, TorchvisionResNet):
        mapping = {key: key for key in backbone.state_dict()}
    elif isinstance(backbone, ResNetV1c):
        mapping = {key: backbone_key(key) for key in backbone.state_dict()}
    else:
        raise ValueError(f"no ImageNet weights format is known for a {type(backbone).__name__} backbone")
    if backbone.in_channels != 3:
        first_conv = "conv1.weight" if isinstance(backbone, TorchvisionResNet) else "stem.conv1.weight"
        state.pop(mapping.pop(first_conv), None)
    own = backbone.state_dict()
    check_state_dict(state, {theirs: own[ours].shape for ours, theirs in mapping.items()}, f"backbone weights {path}")
    backbone.load_state_dict({ours: state[theirs] for ours, theirs in mapping.items()}, strict=False)
