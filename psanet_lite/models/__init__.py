"""Networks: the dilated backbones, the PSA head and the heads it is compared with, and PSANet.

    from psanet_lite.models import PSANet, PSAHead, FCNHead, ResNetV1c, TorchvisionResNet, resnet_lite
    from psanet_lite.models import GlobalPoolHead, PPMHead, NonLocalHead   # related-work context heads
    from psanet_lite.models import count_flops   # FLOPs at an input size, in seconds
"""

from psanet_lite.models.conv_bn_relu import ConvBNReLU
from psanet_lite.models.fcn_head import FCNHead, matching_fcn_channels
from psanet_lite.models.flops import count_flops
from psanet_lite.models.global_pool_head import GlobalPoolHead
from psanet_lite.models.non_local_head import NonLocalHead
from psanet_lite.models.ppm_head import PPMHead
from psanet_lite.models.psa_head import PSABranch, PSAHead
from psanet_lite.models.psanet import PSANet, PSANetOutput
from psanet_lite.models.resnet_v1c import ResNetV1c, resnet_lite
from psanet_lite.models.torchvision_resnet import TorchvisionResNet

__all__ = [
    "ConvBNReLU",
    "FCNHead",
    "GlobalPoolHead",
    "NonLocalHead",
    "PPMHead",
    "PSABranch",
    "PSAHead",
    "PSANet",
    "PSANetOutput",
    "ResNetV1c",
    "TorchvisionResNet",
    "count_flops",
    "matching_fcn_channels",
    "resnet_lite",
]
