"""torch.compile(fullgraph=True) and torch.export of the presets' models, against eager.

The custom operators (psanet_lite/ops/library.py) are what makes the attention traceable;
the backbones are plain convolutions. So every preset's decode head is compiled (aot_eager,
which traces forward and backward through the operators' fake and autograd registrations),
whole models are compiled for the book's model (inductor) and one preset per mask size
(aot_eager), and every distinct preset model is exported. Inputs are small: the shapes of
the attention, not the image size, decide what is traced. ResNet-101 presets share their
heads with the ResNet-50 ones and differ only in plain backbone blocks, so the R50 models
stand for them (the whole test file stays near two minutes on two cores).
"""

import dataclasses

import pytest
import torch

from psanet_lite.build import build_model
from psanet_lite.configs import get_config, names

BOOK_MODEL = "psanet_lite_context"


def _distinct_models():
    """One preset per distinct (model config but depth, number of classes)."""
    seen = {}
    for name in names():
        config = get_config(name)
        seen.setdefault((repr(dataclasses.replace(config.model, depth=50)), config.data.num_classes), name)
    return sorted(seen.values())


DISTINCT = _distinct_models()


def _model(name, **overrides):
    torch.manual_seed(0)
    return build_model(name, **overrides).eval()


@pytest.mark.parametrize("name", DISTINCT)
def test_every_preset_head_compiles_fullgraph_forward_and_backward(name):
    head = _model(name).decode_head.train()
    head.dropout = torch.nn.Identity()  # dropout draws differ between eager and compiled runs
    x = torch.randn(1, head.fuse.conv.in_channels // 2, 9, 11, requires_grad=True)  # odd map: align_corners shrink
    eager = head(x)
    eager_grad, = torch.autograd.grad(eager.square().sum(), x)
    compiled_head = torch.compile(head, fullgraph=True, backend="aot_eager")
    compiled = compiled_head(x)
    compiled_grad, = torch.autograd.grad(compiled.square().sum(), x)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,size,backend,overrides", [
    (BOOK_MODEL, (64, 64), "inductor", {}),
    (BOOK_MODEL, (64, 64), "aot_eager", {"fused": True}),
])
def test_whole_model_compiles_fullgraph_and_equals_eager(name, size, backend, overrides):
    model = _model(name, **overrides)
    images = torch.randn(1, 3, *size)
    with torch.no_grad():
        eager = model(images)
        compiled = torch.compile(model, fullgraph=True, backend=backend)(images)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", DISTINCT)
def test_every_distinct_preset_model_exports(name):
    model = _model(name)
    images = torch.randn(1, 3, 64, 64)
    program = torch.export.export(model, (images,))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert "psanet_lite.psa_mask.default" in targets
    with torch.no_grad():
        torch.testing.assert_close(program.module()(images), model(images), rtol=1e-5, atol=1e-6)
