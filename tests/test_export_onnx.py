"""ONNX export: standard-domain operators only, parity with ONNX Runtime, the command's errors."""

from pathlib import Path

import numpy as np
import pytest
import torch

from psanet_lite.build import build_model
from psanet_lite.cli import main
from psanet_lite.export import ExportError, export_onnx
from psanet_lite.export import onnx_export
from psanet_lite.export.lowering import lowered_psa_mask
from psanet_lite.ops import psa_mask

onnx = pytest.importorskip("onnx", reason="the 'export' extra is not installed")
onnxruntime = pytest.importorskip("onnxruntime", reason="the 'export' extra is not installed")

BOOK_MODEL = "psanet_lite_context"


def _operators(path):
    """{(domain, op_type)} of every node in the file's graph, subgraphs and functions included."""
    model = onnx.load(str(path))
    nodes = list(model.graph.node) + [node for function in model.functions for node in function.node]
    return {(node.domain, node.op_type) for node in nodes}


@pytest.mark.parametrize("mode", ["collect", "distribute"])
@pytest.mark.parametrize("height,width,mh,mw", [(3, 4, 5, 7), (5, 6, 3, 3), (4, 4, 4, 4)])
def test_lowered_psa_mask_equals_the_operator(mode, height, width, mh, mw):
    x = torch.randn(2, mh * mw, height, width)
    assert torch.equal(lowered_psa_mask(x, mode, mh, mw), psa_mask(x, mode, (mh, mw)))


def _book_model(**overrides):
    torch.manual_seed(0)
    return build_model(BOOK_MODEL, **overrides).eval()


@pytest.mark.parametrize("overrides,kwargs,gather_only", [
    # the book's model: the 31x31 mask covers its 16x16 map, PSAMask is one Gather
    ({}, {"attention": True, "dynamic_batch": True}, True),
    # a 9x9 mask on the 16x16 map: Gather then ScatterND into zeros; the fused head lowered too
    ({"mask_size": (9, 9), "fused": True}, {}, False),
])
def test_book_model_exports_standard_operators_and_matches_onnx_runtime(tmp_path, overrides, kwargs, gather_only):
    path = tmp_path / "model.onnx"
    report = export_onnx(_book_model(**overrides), path, (128, 128), **kwargs)
    operators = _operators(path)
    assert {domain for domain, _ in operators} == {""}, operators  # the standard ONNX domain only
    assert ("", "Gather") in operators
    assert (("", "ScatterND") in operators) != gather_only
    expected_outputs = ["logits", "collect", "distribute"] if kwargs.get("attention") else ["logits"]
    assert report.output_names == expected_outputs
    assert max(report.max_rel_error.values()) <= 1e-4
    # The check is ONNX Runtime's own: run the file again here, batch 3 where the batch is free.
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.randn(3 if kwargs.get("dynamic_batch") else 1, 3, 128, 128)
    got = session.run(["logits"], {"images": images.numpy()})[0]
    with torch.no_grad():
        expected = _book_model(**overrides)(images).numpy()
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_the_file_holds_no_path_of_the_exporting_machine(tmp_path):
    path = tmp_path / "book.onnx"
    export_onnx(_book_model(), path, (64, 64))
    installed = str(Path(onnx_export.__file__).resolve().parents[2]).encode()
    assert installed not in path.read_bytes()  # the exporter's stack traces are stripped
    assert not any(node.metadata_props for node in onnx.load(str(path)).graph.node)


def test_float16_export_agrees_with_float32_pytorch(tmp_path):
    path = tmp_path / "half.onnx"
    report = export_onnx(_book_model(), path, (128, 128), dtype="float16")
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert max(report.max_rel_error.values()) <= onnx_export.TOLERANCE["float16"]


def test_float16_weights_halve_the_file_and_keep_the_predictions(tmp_path):
    full, half = tmp_path / "full.onnx", tmp_path / "half.onnx"
    export_onnx(_book_model(), full, (128, 128), attention=True)
    report = export_onnx(_book_model(), half, (128, 128), attention=True, weights_float16=True)
    assert report.size_bytes <= 3_000_000 < full.stat().st_size  # the explorable's model budget
    assert max(report.max_rel_error.values()) <= onnx_export.TOLERANCE["float16"]
    images = np.random.default_rng(1).standard_normal((1, 3, 128, 128)).astype(np.float32)
    logits = [onnxruntime.InferenceSession(str(p)).run(["logits"], {"images": images})[0] for p in (full, half)]
    assert (logits[0].argmax(1) == logits[1].argmax(1)).mean() >= 0.99


def test_r50_preset_exports_and_matches_onnx_runtime(tmp_path):
    # 128x256 instead of the 512x1024 crop: the same graph, at a size a CPU test affords
    # (the command itself runs at the crop size; see the report in benchmarks/).
    torch.manual_seed(0)
    model = build_model("psanet_r50-d8_512x1024_40k_cityscapes").eval()
    report = export_onnx(model, tmp_path / "r50.onnx", (128, 256))
    assert {domain for domain, _ in _operators(tmp_path / "r50.onnx")} == {""}
    assert report.max_rel_error["logits"] <= 1e-4


def test_a_failed_check_raises(tmp_path, monkeypatch):
    monkeypatch.setitem(onnx_export.TOLERANCE, "float32", 0.0)
    with pytest.raises(ExportError, match="ONNX Runtime differs from PyTorch"):
        export_onnx(_book_model(), tmp_path / "m.onnx", (64, 64))


def test_command_prints_the_errors_and_writes_the_file(tmp_path, capsys):
    # 64x64: an 8x8 attention grid, H*W equal to the head's 64 channels, the shape that
    # onnxscript's optimizer got wrong (hence optimize=False in export_onnx).
    path = tmp_path / "context.onnx"
    assert main(["export", BOOK_MODEL, "--format", "onnx", "--size", "64x64", "-o", str(path)]) == 0
    out = capsys.readouterr().out
    assert path.is_file()
    assert "logits: max abs error" in out and "max rel error" in out


@pytest.mark.parametrize("argv,message", [
    (["export", "no_such_model", "-o", "{tmp}/m.onnx"], "must be a preset name"),
    (["export", BOOK_MODEL, "--size", "4x4", "-o", "{tmp}/m.onnx"], "--size must be at least 8x8"),
    (["export", BOOK_MODEL, "-o", "{tmp}/missing/m.onnx"], "does not exist"),
])
def test_command_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("psanet-lite export: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_command_names_the_missing_extra(tmp_path, capsys, monkeypatch):
    real_find_spec = onnx_export.importlib.util.find_spec
    monkeypatch.setattr(onnx_export.importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real_find_spec(name, *a))
    assert main(["export", BOOK_MODEL, "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == ("psanet-lite export: ONNX export needs the 'export' extra (onnxruntime missing): "
                           "pip install 'psanet-lite[export]'")
    assert not (tmp_path / "m.onnx").exists()
