"""The ONNX Runtime peer of bench.infer_throughput: the transformers peer's own weights exported
with torch.onnx, run by onnxruntime on the CPU, in fp32 and with dynamic int8 quantization
(onnxruntime.quantization.quantize_dynamic, QInt8 weights), the path CPU rerankers ship.

`export(model, directory)` writes model_fp32.onnx (dynamic batch and sequence axes) and
model_int8.onnx; `OnnxScorer(path)` turns the peer's torch inputs into logits.
"""

import os

import numpy as np

PRECISIONS = ("fp32", "int8")


def _modules():
    try:
        import onnxruntime
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:
        raise SystemExit(f"bench: the ONNX Runtime peer needs onnx and onnxruntime ({error}); install the bench "
                         "extra (pip install -e '.[bench]') or pass --onnx ''") from error
    return onnxruntime, quantize_dynamic, QuantType


def export(model, directory: str, uses_segment_ids: bool) -> dict:
    """{"fp32": path, "int8": path} of the torch model exported to ONNX (and quantized)."""
    import torch

    _, quantize_dynamic, QuantType = _modules()
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if uses_segment_ids else [])
    # The traced example must have padding: with an all-ones mask transformers skips building
    # the attention mask, and the trace would ignore padding for good.
    ids = torch.full((2, 16), 1000, dtype=torch.int64)
    mask = torch.ones((2, 16), dtype=torch.int64)
    mask[1, 9:] = 0
    example = (ids, mask) + ((torch.zeros((2, 16), dtype=torch.int64),) if uses_segment_ids else ())
    fp32 = os.path.join(directory, "model_fp32.onnx")
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes["logits"] = {0: "batch"}

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *inputs):
            return self.inner(**dict(zip(names, inputs))).logits

    # export() restores the wrapper's training flag on exit, and train(True) would reach the
    # peer's model (dropout on): the wrapper is made in eval mode.
    wrapper = Logits(model).eval()
    with torch.inference_mode():
        torch.onnx.export(wrapper, example, fp32, input_names=names, output_names=["logits"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    assert not model.training
    int8 = os.path.join(directory, "model_int8.onnx")
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
    return {"fp32": fp32, "int8": int8}


class OnnxScorer:
    """logits [B, 4] float32 of the peer's inputs (torch tensors or numpy) with one session."""

    def __init__(self, path: str):
        onnxruntime, _, _ = _modules()
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: dict) -> np.ndarray:
        feed = {name: np.asarray(inputs[name], np.int64) for name in self.names}
        return self.session.run(["logits"], feed)[0].astype(np.float32)
