"""The related-work heads of the context ablation: global pooling, pyramid pooling, non-local.

Shapes, what each one can see, sizes matched to the PSA head, clear errors, and a short
training of every head of the ablation through the command line."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from psanet_lite.book import VARIANTS
from psanet_lite.build import build_model
from psanet_lite.models import GlobalPoolHead, NonLocalHead, PPMHead

HEADS = {"pool": GlobalPoolHead, "ppm": PPMHead, "nonlocal": NonLocalHead}


@pytest.mark.parametrize("kind", HEADS.values())
def test_shapes_any_map_size(kind):
    head = kind(32, 8, num_classes=5).eval()
    for size in ((8, 8), (7, 12), (16, 16)):
        assert head(torch.randn(2, 32, *size)).shape == (2, 5, *size)


def test_global_pooling_gives_every_position_the_same_context():
    head = GlobalPoolHead(16, 8, num_classes=3).eval()
    context = head.context(torch.randn(2, 16, 6, 6))  # [2, 8, 6, 6]
    assert torch.equal(context, context[:, :, :1, :1].expand_as(context))


def test_ppm_context_is_constant_inside_the_coarsest_bins_only():
    torch.manual_seed(0)
    head = PPMHead(16, 4, num_classes=3, bins=(1, 2)).eval()
    x = torch.randn(1, 16, 8, 8)
    moved = x.clone()
    moved[:, :, 0, 0] += 5  # a change in the top-left corner
    change = (head.context(moved) - head.context(x)).abs()  # [1, 8, 8, 8]
    whole = change[:, :4]  # the 1x1 bin: the same change everywhere (channels ReLU zeroes stay 0)
    assert whole.amax() > 0 and torch.allclose(whole, whole[:, :, :1, :1].expand_as(whole))
    assert change[:, 4:, 7, 7].amax() < change[:, 4:, 0, 0].amax()  # the 2x2 bins: mostly near it


def test_non_local_attention_rows_sum_to_one_and_ignore_position():
    head = NonLocalHead(16, 8, num_classes=3).eval()
    x = torch.randn(1, 16, 5, 5)
    weights = head.attention(x)  # [1, 25, 25]
    assert torch.allclose(weights.sum(-1), torch.ones(1, 25))
    order = torch.randperm(25)
    shuffled = x.flatten(2)[:, :, order].view_as(x)  # the same features at other places
    assert torch.allclose(head.attention(shuffled), weights[:, order][:, :, order], atol=1e-6)


def test_non_local_attention_maps_use_the_psa_layout():
    # entry [n, t, y, x] is the weight of source t at receiver (y, x): attention() transposed
    torch.manual_seed(0)
    head = NonLocalHead(16, 8, num_classes=3).eval()
    x = torch.randn(2, 16, 4, 5)
    maps = head.attention_maps(x)["non-local"]
    assert maps.shape == (2, 20, 4, 5)
    weights = head.attention(x)  # [N, s, t]
    assert torch.equal(maps[1, :, 2, 3], weights[1, 2 * 5 + 3])
    assert torch.allclose(maps.sum(dim=1), torch.ones(2, 4, 5))
    with pytest.raises(ValueError, match="records no attention"):
        head.attention_maps()


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match=r"PPMHead expects features \[N, 32, H, W\], got shape \(2, 16, 8, 8\)"):
        PPMHead(32, 8, num_classes=4)(torch.randn(2, 16, 8, 8))
    with pytest.raises(ValueError, match="GlobalPoolHead: channels must be a positive int, got 0"):
        GlobalPoolHead(32, 0, num_classes=4)
    with pytest.raises(ValueError, match="bins must be positive ints"):
        PPMHead(32, 8, num_classes=4, bins=(1, 0))
    with pytest.raises(ValueError, match="model.decode_head must be one of"):
        build_model("psanet_lite_context", decode_head="aspp")


def test_every_variant_has_about_the_parameters_of_psanet():
    sizes = {}
    for key, (_, overrides) in VARIANTS.items():
        with torch.device("meta"):
            model = build_model("psanet_lite_context", **overrides)
        sizes[key] = sum(p.numel() for p in model.parameters())
    assert set(sizes) == {"fcn", "pool", "ppm", "nonlocal", "collect", "distribute", "bi"}
    assert max(sizes.values()) / min(sizes.values()) < 1.10, sizes
    kinds = {key: type(build_model("psanet_lite_context", **VARIANTS[key][1]).decode_head).__name__
             for key in HEADS}
    assert kinds == {"pool": "GlobalPoolHead", "ppm": "PPMHead", "nonlocal": "NonLocalHead"}


@pytest.mark.parametrize("head", ["fcn", "pool", "ppm", "nonlocal"])
def test_train_each_head_through_the_command_line(head, tmp_path):
    command = [str(Path(sys.executable).with_name("psanet-lite")), "train", "psanet_lite_context",
               "--work-dir", str(tmp_path), "--set", f"model.decode_head={head}", "--iterations", "2",
               "--set", "batch_size=2", "--set", "batch_per_gpu=2", "--no-eval", "--no-progress",
               "--workers", "0", "--device", "cpu"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    state = torch.load(tmp_path / "final.pt", weights_only=True)
    assert state["config"]["model"]["decode_head"] == head
