"""Whole, sliding-window and multi-scale + flip inference, as mmsegmentation runs them."""
import pytest
import torch
from torch import nn

from psanet_lite.engine.inference import MS_RATIOS, segment, slide_inference, whole_inference


class WindowRecorder(nn.Module):
    """Logits [N, 2, h, w]: channel 0 = index of the call, channel 1 = 1; records window shapes."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape[-2:]))
        out = torch.ones(x.shape[0], 2, *x.shape[-2:])
        out[:, 0] = len(self.shapes) - 1
        return out


def test_slide_windows_cover_the_image_as_mmseg_counts_them():
    # H=10, crop 6, stride 4: rows (10-6+3)//4+1 = 2 -> y in [0,6), [4,10)
    # W=13:                   cols (13-6+3)//4+1 = 3 -> x in [0,6), [4,10), [7,13)
    model = WindowRecorder()
    logits = slide_inference(model, torch.zeros(1, 3, 10, 13), crop_size=6, stride=4)
    assert model.shapes == [(6, 6)] * 6
    assert torch.equal(logits[0, 1], torch.ones(10, 13))  # every pixel: average of ones
    # call order: (row 0: x0, x4, x7), (row 1: x0, x4, x7) -> indices 0..5
    # pixel (5, 5) lies in windows rows {0,1} x cols {0,1} -> (0 + 1 + 3 + 4) / 4
    assert logits[0, 0, 5, 5].item() == pytest.approx(2.0)
    # pixel (0, 12) only in window (row 0, col 2) = 2; pixel (9, 8) in (1,1),(1,2) -> 4.5
    assert logits[0, 0, 0, 12].item() == 2.0 and logits[0, 0, 9, 8].item() == 4.5


def test_slide_window_shrinks_to_a_small_image():
    model = WindowRecorder()
    slide_inference(model, torch.zeros(1, 3, 5, 7), crop_size=(8, 8), stride=(4, 4))
    assert model.shapes == [(5, 7)]


def test_slide_equals_whole_for_a_pixelwise_model():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 1)
    x = torch.randn(2, 3, 17, 23)
    assert torch.allclose(slide_inference(model, x, (8, 9), (5, 6)), whole_inference(model, x), atol=1e-6)


class SizeLogits(nn.Module):
    """Logits [N, 2, h, w]: channel 0 = h / 10 everywhere, channel 1 = 0."""

    def forward(self, x):
        out = torch.zeros(x.shape[0], 2, *x.shape[-2:])
        out[:, 0] = x.shape[-2] / 10
        return out


def test_multi_scale_averages_probabilities_not_logits():
    scores = segment(SizeLogits(), torch.zeros(1, 3, 20, 20), ratios=(0.5, 1.0))
    # ratio 0.5 -> h 10 -> logits (1, 0); ratio 1 -> h 20 -> logits (2, 0)
    p1, p2 = torch.softmax(torch.tensor([1.0, 0.0]), 0), torch.softmax(torch.tensor([2.0, 0.0]), 0)
    expected = (p1 + p2) / 2
    assert torch.allclose(scores[0, :, 3, 4], expected)
    assert not torch.allclose(expected, torch.softmax(torch.tensor([1.5, 0.0]), 0))


class RampLogits(nn.Module):
    """Logits that grow from left to right whatever the input: not mirror-symmetric."""

    def forward(self, x):
        ramp = torch.linspace(0, 1, x.shape[-1]).expand(x.shape[0], 1, *x.shape[-2:])
        return torch.cat([ramp, torch.zeros_like(ramp)], dim=1)


def test_flip_pass_is_mirrored_back():
    scores = segment(RampLogits(), torch.zeros(1, 3, 4, 5), flip=True)
    ramp = torch.linspace(0, 1, 5)
    expected = (torch.sigmoid(ramp) + torch.sigmoid(ramp.flip(0))) / 2  # softmax of (r, 0) = sigmoid(r)
    assert torch.allclose(scores[0, 0, 2], expected)


def test_scores_come_back_at_the_output_size():
    model = nn.Conv2d(3, 3, 1)
    scores = segment(model, torch.randn(1, 3, 16, 24), out_size=(32, 48), ratios=MS_RATIOS, flip=True)
    assert scores.shape == (1, 3, 32, 48)
    assert torch.allclose(scores.sum(1), torch.ones(1, 32, 48))
    logits = segment(model, torch.randn(1, 3, 16, 24), out_size=(8, 12), mode="slide", crop_size=8, stride=6)
    assert logits.shape == (1, 3, 8, 12)


def test_bad_modes():
    with pytest.raises(ValueError, match="'whole' or 'slide'"):
        segment(nn.Identity(), torch.zeros(1, 3, 4, 4), mode="tiles")
    with pytest.raises(ValueError, match="needs crop_size and stride"):
        segment(nn.Identity(), torch.zeros(1, 3, 4, 4), mode="slide")
