"""PSAHead against mmsegmentation's forward, written out here step by step from its source.

The reference below follows mmsegmentation's PSAHead.forward line by line (shrink rule,
resize, PSAMask, softmax, bmm, scaling, concatenation, padded projection, resize,
bottleneck, classifier), with PSAMask computed from the closed form in
psa-semantics.md rather than from psanet_lite.ops.
"""

import pytest
import torch
import torch.nn.functional as F

from psanet_lite.models import PSAHead


def closed_form_psa_mask(a, mode, mh, mw):
    """[N, mh*mw, H, W] -> [N, HW, HW] from Y[p, q] = A[(ph-qh+hh)*mw + (pw-qw+hw), qh, qw] (collect)."""
    n, _, height, width = a.shape
    hh, hw = (mh - 1) // 2, (mw - 1) // 2
    y = a.new_zeros(n, height * width, height * width)
    for p in range(height * width):
        ph, pw = divmod(p, width)
        for q in range(height * width):
            qh, qw = divmod(q, width)
            if mode == "collect":
                i, j, (sh, sw) = ph - qh + hh, pw - qw + hw, (qh, qw)
            else:
                i, j, (sh, sw) = qh - ph + hh, qw - pw + hw, (ph, pw)
            if 0 <= i < mh and 0 <= j < mw:
                y[:, p, q] = a[:, i * mw + j, sh, sw]
    return y


def mmseg_forward(head, x, psa_type):
    """mmsegmentation's PSAHead.forward in eval mode, using the head's layers."""
    identity = x
    align_corners = head.align_corners
    s = head.shrink_factor
    mh, mw = head.mask_size

    def shrink(t):
        nonlocal align_corners
        n, c, h, w = t.size()
        if s != 1:
            if h % s and w % s:
                h, w, align_corners = (h - 1) // s + 1, (w - 1) // s + 1, True
            else:
                h, w, align_corners = h // s, w // s, False
            t = F.interpolate(t, size=(h, w), mode="bilinear", align_corners=align_corners)
        return t, n, c, h, w

    def attend(t, y, n, c, h, w):
        if head.psa_softmax:
            y = F.softmax(y, dim=1)
        return torch.bmm(t.view(n, c, h * w), y.view(n, h * w, h * w)).view(n, c, h, w) * (
            1.0 / head.normalization_factor
        )

    if psa_type in ("collect", "distribute"):
        branch = getattr(head, psa_type)
        out, n, c, h, w = shrink(branch.reduce(x))
        y = branch.attention(out)
        if head.compact:
            if psa_type == "collect":
                y = y.view(n, h * w, h * w).transpose(1, 2).reshape(n, h * w, h, w)
        else:
            y = closed_form_psa_mask(y, psa_type, mh, mw)
        out = attend(out, y, n, c, h, w)
    else:
        x_col, n, c, h, w = shrink(head.collect.reduce(x))
        x_dis, *_ = shrink(head.distribute.reduce(x))
        y_col = head.collect.attention(x_col)
        y_dis = head.distribute.attention(x_dis)
        if head.compact:
            y_dis = y_dis.view(n, h * w, h * w).transpose(1, 2).reshape(n, h * w, h, w)
        else:
            y_col = closed_form_psa_mask(y_col, "collect", mh, mw)
            y_dis = closed_form_psa_mask(y_dis, "distribute", mh, mw)
        out = torch.cat([attend(x_col, y_col, n, c, h, w), attend(x_dis, y_dis, n, c, h, w)], 1)
    out = head.project(out)
    out = F.interpolate(out, size=identity.shape[2:], mode="bilinear", align_corners=align_corners)
    out = head.fuse(torch.cat((identity, out), dim=1))
    return head.classifier(out)


def _head(**kwargs):
    torch.manual_seed(0)
    settings = dict(in_channels=24, channels=8, num_classes=5, mask_size=(7, 7))
    settings.update(kwargs)
    head = PSAHead(**settings).eval()
    with torch.no_grad():  # non-trivial BN statistics so every layer matters
        for m in head.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
        head.classifier.weight.normal_()
    return head


@pytest.mark.parametrize(
    "size, settings",
    [
        ((9, 9), dict()),  # odd sides: (h-1)//2+1 = 5, align_corners True
        ((8, 10), dict()),  # even: h//2 = 4x5, align_corners False
        ((9, 8), dict(mask_size=(5, 4))),  # one side odd, even mask (asymmetric window)
        ((7, 7), dict(psa_type="collect")),
        ((7, 7), dict(psa_type="distribute", normalization_factor=None)),
        ((7, 7), dict(shrink_factor=1, mask_size=(3, 5), align_corners=True)),
        ((6, 6), dict(psa_softmax=False, normalization_factor=20.0)),
        ((9, 9), dict(compact=True, mask_size=(5, 5))),  # 25 channels = 5*5 positions
        ((9, 9), dict(compact=True, mask_size=(5, 5), psa_type="collect")),
        ((9, 9), dict(compact=True, mask_size=(5, 5), psa_type="distribute")),
    ],
)
def test_head_matches_mmseg_forward(size, settings):
    head = _head(**settings)
    x = torch.randn(2, 24, *size)
    with torch.no_grad():
        expected = mmseg_forward(head, x, head.psa_type)
        got = head(x)
    assert got.shape == (2, 5, *size)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_projection_padding_one_is_the_default_and_zero_differs():
    x = torch.randn(1, 24, 9, 9)
    padded, unpadded = _head(), _head(proj_padding=0)
    assert padded.project.conv.padding == (1, 1) and unpadded.project.conv.padding == (0, 0)
    unpadded.load_state_dict(padded.state_dict())
    with torch.no_grad():
        assert not torch.allclose(padded(x), unpadded(x))


def test_attention_grid_follows_the_shrink_rule():
    head = _head()
    assert head.attention_grid(97, 97) == (49, 49, True)  # 769x769 crops
    assert head.attention_grid(64, 128) == (32, 64, False)  # 512x1024 crops
    assert head.attention_grid(65, 64) == (32, 32, False)
    with pytest.raises(ValueError, match="shrink_factor"):
        head.attention_grid(1, 5)


def test_reference_softmax_gives_unwritten_cells_an_exp0_share():
    head = _head(mask_size=(3, 3))
    logits = torch.randn(1, 9, 4, 4)
    attention = head.attention_matrix(logits, "collect").view(1, 16, 16)
    written = closed_form_psa_mask(torch.ones_like(logits), "collect", 3, 3) != 0
    torch.testing.assert_close(attention.sum(1), torch.ones(1, 16))
    dense = closed_form_psa_mask(logits, "collect", 3, 3)
    # Unwritten rows of a column each hold exp(0) / sum over the whole column.
    expected_unwritten = (1.0 / torch.exp(dense).sum(1, keepdim=True)).expand_as(dense)
    torch.testing.assert_close(attention[~written], expected_unwritten[~written])


@pytest.mark.parametrize("direction", ["collect", "distribute"])
def test_window_softmax_is_a_softmax_over_the_written_cells_only(direction):
    head = _head(mask_size=(3, 5), softmax="window")
    logits = torch.randn(2, 15, 4, 5)
    attention = head.attention_matrix(logits, direction).view(2, 20, 20)
    dense = closed_form_psa_mask(logits, direction, 3, 5)
    written = closed_form_psa_mask(torch.ones_like(logits), direction, 3, 5) != 0
    assert torch.all(attention[~written] == 0)
    exp = torch.where(written, torch.exp(dense), torch.zeros_like(dense))
    torch.testing.assert_close(attention, exp / exp.sum(1, keepdim=True))


def test_window_and_reference_softmax_agree_when_the_mask_covers_the_map():
    logits = torch.randn(1, 49, 4, 4)  # 7 >= 2*4-1: every cell written
    reference = _head(softmax="reference").attention_matrix(logits, "distribute")
    window = _head(softmax="window").attention_matrix(logits, "distribute")
    torch.testing.assert_close(reference, window)


def test_psa_mask_backends_give_the_same_head_output():
    x = torch.randn(1, 24, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(_head(backend="reference")(x), _head(backend="torch")(x))


@pytest.mark.parametrize("softmax, psa_softmax", [("reference", True), ("window", True), ("reference", False)])
@pytest.mark.parametrize("psa_type", ["bi", "collect", "distribute"])
def test_fused_head_equals_unfused(softmax, psa_softmax, psa_type):
    unfused = _head(softmax=softmax, psa_softmax=psa_softmax, psa_type=psa_type, mask_size=(5, 5))
    fused = _head(softmax=softmax, psa_softmax=psa_softmax, psa_type=psa_type, mask_size=(5, 5), fused=True)
    fused.load_state_dict(unfused.state_dict())
    x = torch.randn(2, 24, 9, 11, requires_grad=True)
    out_fused, out_unfused = fused(x), unfused(x)
    torch.testing.assert_close(out_fused, out_unfused, rtol=1e-4, atol=1e-5)
    grad_fused = torch.autograd.grad(out_fused.square().sum(), x)[0]
    grad_unfused = torch.autograd.grad(out_unfused.square().sum(), x)[0]
    torch.testing.assert_close(grad_fused, grad_unfused, rtol=1e-4, atol=1e-5)


def _fused_and_unfused_under_autocast(device):
    """Outputs and input gradients of the fused and unfused head (same weights) under bfloat16 autocast."""
    unfused = _head(mask_size=(5, 7)).to(device)
    fused = _head(mask_size=(5, 7), fused=True).to(device)
    fused.load_state_dict(unfused.state_dict())
    x = torch.randn(2, 24, 9, 11, device=device, requires_grad=True)
    results = []
    for head in (fused, unfused):
        with torch.autocast(device.type, dtype=torch.bfloat16):
            out = head(x)
        results.append((out.float(), torch.autograd.grad(out.float().square().sum(), x)[0]))
    return results


def test_fused_head_under_autocast_follows_the_unfused_head():
    """Under autocast the fused head hands the last convolution's factors over in the autocast
    dtype (as the convolution would run), so the route sees one dtype."""
    (out_fused, grad_fused), (out_unfused, grad_unfused) = _fused_and_unfused_under_autocast(torch.device("cpu"))
    assert out_fused.isfinite().all()
    scale = out_unfused.abs().max()
    torch.testing.assert_close(out_fused / scale, out_unfused / scale, rtol=0, atol=3e-2)
    scale = grad_unfused.abs().max()
    torch.testing.assert_close(grad_fused / scale, grad_unfused / scale, rtol=0, atol=5e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_head_under_cuda_autocast_runs_the_tensor_core_route(monkeypatch):
    from psanet_lite.ops import aggregate_logits_cupy

    if not aggregate_logits_cupy.supports(torch.bfloat16, torch.device("cuda")):
        pytest.skip("the bfloat16 tensor-core kernel needs sm_80 and CuPy")
    calls = []
    original = aggregate_logits_cupy.forward
    monkeypatch.setattr(aggregate_logits_cupy, "forward", lambda *args: calls.append(args[3]) or original(*args))
    (out_fused, grad_fused), (out_unfused, grad_unfused) = _fused_and_unfused_under_autocast(torch.device("cuda"))
    assert calls and set(calls) == {"collect", "distribute"}
    scale = out_unfused.abs().max()
    torch.testing.assert_close(out_fused / scale, out_unfused / scale, rtol=0, atol=3e-2)
    scale = grad_unfused.abs().max()
    torch.testing.assert_close(grad_fused / scale, grad_unfused / scale, rtol=0, atol=5e-2)


def test_branch_structure_per_psa_type():
    assert _head(psa_type="bi").directions == ("collect", "distribute")
    assert _head(psa_type="bi-direction").directions == ("collect", "distribute")
    assert _head(psa_type="collect").distribute is None
    assert _head(psa_type="distribute").collect is None
    assert _head(psa_type="collect").project.conv.in_channels == 8
    assert _head(mask_size=(9, 4)).collect.attention[1].out_channels == 36


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(psa_type="both"), ValueError, "psa_type"),
        (dict(softmax="sparse"), ValueError, "softmax"),
        (dict(mask_size=0), ValueError, "mask_size"),
        (dict(mask_size=(3, 3, 3)), ValueError, "mask_size"),
        (dict(mask_size=None), ValueError, "mask_size"),
        (dict(mask_size=2.5), TypeError, "mask_size"),
        (dict(shrink_factor=0), ValueError, "shrink_factor"),
        (dict(proj_padding=2), ValueError, "proj_padding"),
        (dict(compact=True, fused=True), ValueError, "compact"),
        (dict(compact=True, backend="torch"), ValueError, "compact"),
        (dict(fused=True, backend="dense"), ValueError, "fused=True needs backend"),
        (dict(backend="triton"), ValueError, "backend must be None or one of"),
    ],
)
def test_bad_settings_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        PSAHead(in_channels=24, channels=8, num_classes=5, **{"mask_size": 7, **kwargs})


def test_compact_needs_a_mask_with_one_cell_per_position():
    head = _head(compact=True, mask_size=(5, 5))
    with pytest.raises(ValueError, match="compact"):
        head(torch.randn(1, 24, 12, 12))  # 6x6 attention grid, 36 != 25
