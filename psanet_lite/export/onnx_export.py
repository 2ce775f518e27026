"""Export a PSANet to ONNX in the standard domain, and check it in ONNX Runtime.

    export_onnx(model, "model.onnx", size=(128, 128))      -> ExportReport

The model is traced with torch.export while psanet_lite.ops runs its operators in
standard ones (psanet_lite.export.lowering), so the graph holds Gather / ScatterND where
PSAMask was, with its index table a constant for the given size. Right after writing the
file, ONNX Runtime runs it on seeded random images and its outputs are compared with
PyTorch's: max absolute error, and relative error = max absolute error / max |PyTorch|.
"""

import dataclasses
import importlib.util
import os
import warnings

import torch
from torch import nn

from psanet_lite.export.lowering import IndexTables, lowered_operators

EXTRA_MODULES = ("onnx", "onnxruntime", "onnxscript")
DTYPES = {"float32": torch.float32, "float16": torch.float16}
# Relative error allowed between ONNX Runtime and PyTorch (float32 PyTorch as the reference).
TOLERANCE = {"float32": 1e-4, "float16": 2e-2}
OPSET = 18


class ExportError(RuntimeError):
    """The export cannot run (missing extra) or its check failed."""


def missing_modules():
    """The modules of the `export` extra that are not installed (empty when all are).

    >>> isinstance(missing_modules(), list)
    True
    """
    return [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]


def require_export_extra():
    """Raise ExportError naming the extra and the missing modules, if any is missing."""
    missing = missing_modules()
    if missing:
        raise ExportError(
            f"ONNX export needs the 'export' extra ({', '.join(missing)} missing): "
            "pip install 'psanet-lite[export]'"
        )


class SegmentationWithAttention(nn.Module):
    """images [N, 3, H, W] -> (logits [N, K, H, W], one [N, h'*w', h', w'] attention per direction).

    The attention is the head's softmaxed collect / distribute matrix (PSANet.attention_maps):
    entry [n, t, y, x] is the weight of position t in the output at (y, x). Recording is
    switched on in the wrapped model's head.

    >>> from psanet_lite.build import build_model
    >>> wrapped = SegmentationWithAttention(build_model("psanet_lite_context").eval())
    >>> [tuple(o.shape) for o in wrapped(torch.randn(1, 3, 64, 64))]
    [(1, 4, 64, 64), (1, 64, 8, 8), (1, 64, 8, 8)]
    """

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.directions = model.decode_head.directions
        model.decode_head.record_attention = True

    def forward(self, images):
        logits = self.model(images)                              # [N, K, H, W]
        maps = self.model.decode_head.attention_maps()           # direction -> [N, h'*w', h', w']
        return (logits,) + tuple(maps[d] for d in self.directions)


@dataclasses.dataclass
class ExportReport:
    """What export_onnx wrote and how ONNX Runtime's outputs compare with PyTorch's."""

    path: str
    output_names: list
    max_abs_error: dict
    max_rel_error: dict
    size_bytes: int

    def summary(self):
        """One line per output: its name and its errors."""
        return "\n".join(
            f"{name}: max abs error {self.max_abs_error[name]:.3g}, max rel error {self.max_rel_error[name]:.3g}"
            for name in self.output_names
        )


def _trace(module, images, dynamic_batch):
    """torch.export of `module` with the operators lowered (index tables filled by one eager run)."""
    tables = IndexTables()
    dynamic_shapes = {"images": {0: torch.export.Dim("batch", min=1, max=1024)}} if dynamic_batch else None
    with lowered_operators(tables), torch.no_grad():
        module(images)
        return torch.export.export(module, (images,), dynamic_shapes=dynamic_shapes)


def _write(module, images, path, output_names, dynamic_batch):
    """Trace `module` with the operators lowered and save it as one ONNX file."""
    with warnings.catch_warnings():
        # The head keeps the attention it recorded as a plain attribute, which export
        # reports (the graph returns that attention as an output instead); the exporter
        # itself still uses a pytree class that torch deprecates.
        warnings.filterwarnings("ignore", message="The tensor attributes .* were assigned during export")
        warnings.filterwarnings("ignore", message=".*LeafSpec", category=FutureWarning)
        program = _trace(module, images, dynamic_batch)
        # optimize=False: onnxscript 0.7's graph optimizer corrupts this model when the
        # attention grid's H*W equals the channel count (the 8x8 grid of a 64x64 input to the
        # book's 64-channel head: errors of 100% that the check reports). ONNX Runtime
        # optimizes the graph itself when it loads it.
        onnx_program = torch.onnx.export(program, input_names=["images"], output_names=output_names,
                                         opset_version=OPSET, dynamo=True, verbose=False, optimize=False)
        onnx_program.save(str(path), external_data=False)
    strip_trace_metadata(path)


def strip_trace_metadata(path):
    """Drop what the exporter records about the trace from the ONNX file at `path`: each
    node's stack trace (absolute paths of the exporting machine), FX node and module
    names. They serve debugging only, take about an eighth of the book model's file, and
    would make the file depend on where the library is installed."""
    import onnx

    model = onnx.load(str(path))
    for node in model.graph.node:
        del node.metadata_props[:]
    onnx.save(model, str(path))


def store_weights_float16(path, smallest=1024):
    """Rewrite the ONNX file at `path` with its float32 weights stored as float16.

    Each float32 initializer of at least `smallest` elements is stored in half the bytes
    and cast back to float32 by a Cast node at the start of the graph: the computation
    stays float32, only the weights are rounded. Returns the new file size in bytes.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    casts = []
    for initializer in model.graph.initializer:
        if initializer.data_type != onnx.TensorProto.FLOAT or np.prod(initializer.dims) < smallest:
            continue
        name = initializer.name
        half = numpy_helper.to_array(initializer).astype(np.float16)
        initializer.CopyFrom(numpy_helper.from_array(half, f"{name}_float16"))
        casts.append(helper.make_node("Cast", [f"{name}_float16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = casts + list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return os.path.getsize(path)


def _compare(path, module, images, output_names, dtype):
    """Max absolute and relative error of ONNX Runtime against PyTorch in float32, per output."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(output_names, {"images": images.to(DTYPES[dtype]).numpy()})
    with torch.no_grad():
        expected = module.float()(images)
    errors, relative = {}, {}
    for name, value, reference in zip(output_names, got, expected):
        difference = (torch.from_numpy(value).float() - reference).abs().max().item()
        errors[name] = difference
        relative[name] = difference / max(reference.abs().max().item(), 1e-12)
    return errors, relative


def export_onnx(model, path, size, dynamic_batch=False, dtype="float32", attention=False, weights_float16=False,
                seed=0):
    """Write `model` (a PSANet) as an ONNX file of standard-domain operators and check it.

    Args:
        model: PSANet; put in eval mode for the export (and left there).
        path: the .onnx file to write (weights inside it, no external data file).
        size: (H, W) of the input images the graph is built for.
        dynamic_batch: leave the batch dimension free (else it is 1).
        dtype: 'float32' or 'float16' (weights, inputs and outputs).
        attention: also return the collect / distribute attention (SegmentationWithAttention).
        weights_float16: store float32 weights as float16 (store_weights_float16), half the file.
        seed: seeds the random images of the check.

    Returns:
        ExportReport. Raises ExportError when the extra is missing or ONNX Runtime's
        outputs differ from PyTorch's by more than TOLERANCE (relative): TOLERANCE['float32'],
        or TOLERANCE['float16'] when anything is stored in float16.
    """
    require_export_extra()
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    model.eval()
    head = model.decode_head
    recording = getattr(head, "record_attention", None)
    if attention and recording is None:
        raise ValueError(f"attention=True needs a PSA decode head, got {type(head).__name__}")
    module = SegmentationWithAttention(model) if attention else model
    output_names = ["logits"] + (list(module.directions) if attention else [])
    images = torch.randn(2 if dynamic_batch else 1, 3, *size, generator=torch.Generator().manual_seed(seed))
    try:
        _write(module.to(DTYPES[dtype]), images.to(DTYPES[dtype]), path, output_names, dynamic_batch)
        if weights_float16:
            store_weights_float16(path)
        errors, relative = _compare(str(path), module, images, output_names, dtype)
    finally:
        module.float()
        if recording is not None:
            head.record_attention = recording
    report = ExportReport(str(path), output_names, errors, relative, os.path.getsize(path))
    worst = max(relative.values())
    precision = "float16" if weights_float16 else dtype
    if worst > TOLERANCE[precision]:
        raise ExportError(f"ONNX Runtime differs from PyTorch by {worst:.3g} relative "
                          f"(allowed {TOLERANCE[precision]:g} with {precision} numbers):\n{report.summary()}")
    return report
