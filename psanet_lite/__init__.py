"""psanet_lite: PSANet (point-wise spatial attention, Zhao et al., ECCV 2018), readable and fast.

    import psanet_lite
    psanet_lite.configs.names()                        # every published PSANet row, the book's model
    cfg = psanet_lite.get_config("psanet_r50-d8_512x512_80k_ade20k")
    model = psanet_lite.build_model("psanet_lite_context")

The layers of the library, one folder each: ops (PSAMask, fused aggregation), models,
configs, checkpoint, data, engine (training, evaluation), viz, cli.
"""
from psanet_lite import configs
from psanet_lite.configs import get_config

__version__ = "0.1.0"
__all__ = ["build_model", "configs", "get_config", "__version__"]


def __getattr__(name):
    # build_model loads torch: imported on first use, so `psanet-lite --help` starts fast
    if name == "build_model":
        from psanet_lite.build import build_model

        return build_model
    raise AttributeError(f"module 'psanet_lite' has no attribute {name!r}")
