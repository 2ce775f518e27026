"""The PSA module diagram prints the shapes the head really computes."""
import pytest
import torch

from psanet_lite.models import PSAHead
from psanet_lite.viz.psa_module_diagram import psa_module_diagram


def _shape(tensor):
    return "[N, " + ", ".join(str(v) for v in tensor.shape[1:]) + "]"


@pytest.mark.parametrize("psa_type, size", [("bi", (9, 9)), ("collect", (8, 10)), ("distribute", (7, 7))])
def test_diagram_shows_the_shapes_of_a_real_forward(psa_type, size):
    head = PSAHead(24, 8, 5, mask_size=(5, 7), psa_type=psa_type).eval()
    seen = {}
    hooks = [getattr(head, name).register_forward_hook(
        lambda module, inputs, output, name=name: seen.setdefault(name, output))
        for name in ("project", "fuse", "classifier")]
    branch = getattr(head, head.directions[0])
    hooks += [branch.reduce.register_forward_hook(lambda m, i, o: seen.setdefault("reduce", o)),
              branch.attention.register_forward_hook(lambda m, i, o: seen.setdefault("attention", o))]
    with torch.no_grad():
        head(torch.randn(1, 24, *size))
    for hook in hooks:
        hook.remove()
    svg = psa_module_diagram(head, *size).svg
    for name in ("reduce", "project", "fuse"):
        assert _shape(seen[name]) in svg, name
    a = seen["attention"]
    assert f"A [N, 5*7, {a.shape[2]}, {a.shape[3]}]" in svg
    assert f"logits {_shape(seen['classifier'])}" in svg
    assert all(f"PSAMask ({d})" in svg for d in head.directions)
    assert svg.count("PSAMask (") == len(head.directions)
