"""The CLIP text tower on ONNX Runtime (CPU, opt-in): the lean text path exported once per model and
run by onnxruntime, which fuses LayerNorm, attention and GELU and has less overhead per operator
than eager torch at batch 1. Needs the `onnx` package for the export (onnxruntime runs it)."""
import io
import logging
import threading
import warnings
import weakref

import numpy as np
import torch

from executors.clip_encoding import has_lean_text_path, lean_text_transformer
from executors.errors import ModelError

log = logging.getLogger(__name__)
_sessions: 'weakref.WeakKeyDictionary[torch.nn.Module, dict]' = weakref.WeakKeyDictionary()  # model -> threads -> session
_lock = threading.Lock()


def onnx_text_session(model: torch.nn.Module, threads: int = 1):
    """An onnxruntime InferenceSession computing model.encode_text(tokens[:, :length]) for int64
    tokens (N x length); built on first use (a few seconds), then cached for the model's lifetime."""
    with _lock:
        sessions = _sessions.setdefault(model, {})
        if threads not in sessions:
            sessions[threads] = _build(model, threads)
        return sessions[threads]


def encode_tokens_onnx(model: torch.nn.Module, tokens: torch.Tensor, threads: int = 1) -> torch.Tensor:
    """Exactly (within 1e-5) model.encode_text(tokens), on ONNX Runtime over the tokens that count."""
    length = int(tokens.argmax(dim=-1).max()) + 1
    session = onnx_text_session(model, threads)
    features = session.run(None, {'tokens': np.ascontiguousarray(tokens[:, :length].cpu().numpy(), np.int64)})[0]
    return torch.from_numpy(features)


class _LeanText(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return lean_text_transformer(self.model, tokens)


def _build(model: torch.nn.Module, threads: int):
    quantized = any('quantized' in type(module).__module__ for module in model.transformer.modules())
    if (not has_lean_text_path(model) or quantized or model.text_projection.device.type != 'cpu'
            or model.dtype != torch.float32):
        raise ModelError('the ONNX text tower takes a stock fp32 CLIP on the CPU (not int8, tuned or CUDA); '
                         'use the torch text path for this model')
    try:
        import onnxruntime
    except ImportError as e:
        raise ModelError(f'the ONNX text tower needs onnxruntime and onnx ({e}); pip install onnx onnxruntime') from e
    example = torch.full((1, 8), 1, dtype=torch.long)
    example[0, -1] = model.token_embedding.num_embeddings - 1  # end-of-text: the largest id
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter('ignore')
        try:
            torch.onnx.export(_LeanText(model).eval(), (example,), buffer, input_names=['tokens'],
                              output_names=['features'], dynamic_axes={'tokens': {0: 'batch', 1: 'length'}},
                              opset_version=17, dynamo=False)
        except Exception as e:  # torch raises its own error types for a missing onnx package or an export failure
            raise ModelError(f'could not export the text tower to ONNX: {str(e).splitlines()[0][:200]}') from e
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    log.info('text tower exported to ONNX (%.0f MB), running on onnxruntime with %d thread(s)',
             buffer.getbuffer().nbytes / 1e6, threads)
    return onnxruntime.InferenceSession(buffer.getvalue(), options, providers=['CPUExecutionProvider'])
