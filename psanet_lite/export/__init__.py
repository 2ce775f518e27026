"""Deployment: the model outside PyTorch (ONNX with standard operators only).

    from psanet_lite.export import export_onnx
    report = export_onnx(model, "model.onnx", size=(128, 128), attention=True)
    print(report.summary())
"""

from psanet_lite.export.onnx_export import ExportError, ExportReport, SegmentationWithAttention, export_onnx

__all__ = ["ExportError", "ExportReport", "SegmentationWithAttention", "export_onnx"]
