"""`psanet-lite info`: parameter count and FLOPs of a preset."""

import json

import pytest
import torch

from psanet_lite.build import build_model
from psanet_lite.cli import main


def _run(argv, capsys):
    code = main(argv)  # errors become one line on stderr and exit code 2
    return code, capsys.readouterr()


def test_info_reports_parameters_and_flops_of_the_built_model(capsys):
    code, output = _run(["info", "psanet_lite_context", "--size", "64x96", "--json"], capsys)
    assert code == 0
    described = json.loads(output.out)
    model = build_model("psanet_lite_context")
    assert described["parameters"] == sum(p.numel() for p in model.parameters())
    assert described["parameters_by_part"]["aux_head"] == sum(p.numel() for p in model.aux_head.parameters())
    model.eval()
    counter = torch.utils.flop_counter.FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, 64, 96))
    assert described["flops"] == counter.get_total_flops()
    assert described["flops_input_size"] == [64, 96]


def test_info_text_for_a_published_preset(capsys):
    code, output = _run(["info", "psanet_r50-d8_512x512_80k_ade20k", "--size", "64x64"], capsys)
    assert code == 0
    assert "mask 66x66" in output.out and "150 classes" in output.out
    assert "for one 64x64 image" in output.out and "mIoU 41.14, ms+flip 41.91" in output.out


def test_info_lists_presets_and_rejects_unknown_names(capsys):
    code, output = _run(["info", "--list"], capsys)
    assert code == 0 and "psanet_r101-d8_769x769_80k_cityscapes" in output.out.split()
    code, output = _run(["info", "psanet_r18"], capsys)
    assert code == 2 and "unknown preset" in output.err


def test_info_rejects_a_malformed_size(capsys):
    with pytest.raises(SystemExit):
        _run(["info", "psanet_lite_context", "--size", "64"], capsys)
    assert "512x1024" in capsys.readouterr().err
