"""The CLIP text tower on ONNX Runtime (CPU): the lean text path exported once per model and run by
onnxruntime, which fuses LayerNorm, attention and GELU and has less overhead per operator than eager
torch at batch 1 (a 10-token query: 11.3 ms on two idle cores against torch's 15.5 ms; 26 against 44 ms,
p99 33 against 86 ms, with both cores busy). The export (2-4 s) is saved under weights/onnx/, keyed
by the checkpoint's identity, so only the first process ever pays it. Needs `onnx` for the export
and `onnxruntime` to run it."""
import importlib.util
import io
import logging
import threading
import warnings
import weakref
from pathlib import Path

import numpy as np
import torch

from executors.atomic import replace_atomically
from executors.models.clip_text import has_lean_text_path, lean_text_transformer
from executors.models.onnx_text_file import THREADS, agreeing_session, features, session_options, write_probe
from executors.errors import ModelError

log = logging.getLogger(__name__)
_sessions: 'weakref.WeakKeyDictionary[torch.nn.Module, dict]' = weakref.WeakKeyDictionary()  # model: threads: session
_lock = threading.Lock()


def onnx_suits(model: torch.nn.Module) -> bool:
    """Whether the ONNX text tower can run `model`: a stock fp32 CLIP on the CPU, with onnx and
    onnxruntime installed (logged once when they are not)."""
    return _why_not(model) == '' and _installed()


def onnx_text_session(model: torch.nn.Module, threads: int = THREADS, saved: Path | None = None):
    """An onnxruntime InferenceSession computing model.encode_text(tokens[:, :length]) for int64
    tokens (N x length); loaded from `saved` when that file holds a matching export, else exported
    (and written to `saved`, with the probe that lets later processes run it without the checkpoint:
    executors/models/onnx_text_file.py); then kept for the model's lifetime."""
    with _lock:
        sessions = _sessions.get(model, {})
        if threads not in sessions:
            sessions[threads] = _session(model, threads, saved)  # a model it cannot run gets no entry
            _sessions[model] = sessions
        return sessions[threads]


def encode_tokens_onnx(model: torch.nn.Module, tokens: torch.Tensor, threads: int = THREADS,
                       saved: Path | None = None) -> torch.Tensor:
    """Exactly (within 1e-5) model.encode_text(tokens), on ONNX Runtime over the tokens that count."""
    session = onnx_text_session(model, threads, saved)
    return torch.from_numpy(features(session, tokens.cpu().numpy()))


class _LeanText(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return lean_text_transformer(self.model, tokens)


def _why_not(model: torch.nn.Module) -> str:
    quantized = any('quantized' in type(module).__module__ for module in model.transformer.modules())
    if (not has_lean_text_path(model) or quantized or model.text_projection.device.type != 'cpu'
            or model.dtype != torch.float32):
        return ('the ONNX text tower takes a stock fp32 CLIP on the CPU (not int8, tuned or CUDA); '
                'use the torch text path for this model')
    return ''


_missing_logged = False


def _installed() -> bool:
    global _missing_logged
    missing = [name for name in ('onnx', 'onnxruntime') if importlib.util.find_spec(name) is None]
    if missing and not _missing_logged:
        log.info('%s not installed: CLIP text queries run on torch (pip install onnx onnxruntime: ~2x faster)',
                 ' and '.join(missing))
        _missing_logged = True
    return not missing


def _session(model: torch.nn.Module, threads: int, saved: Path | None):
    problem = _why_not(model)
    if problem:
        raise ModelError(problem)
    try:
        import onnxruntime
    except ImportError as e:
        raise ModelError(f'the ONNX text tower needs onnxruntime and onnx ({e}); pip install onnx onnxruntime') from e
    tokens, expected = _probe(model)
    if saved is not None and saved.exists():
        session = agreeing_session(saved, threads, tokens, expected, 'does not match its checkpoint',
                                   'exporting the text tower again')
        if session is not None:
            write_probe(saved, tokens, expected, model.context_length)
            return session
    exported = _export(model)
    if saved is not None and _keep(exported, saved):
        write_probe(saved, tokens, expected, model.context_length)
    log.info('text tower exported to ONNX (%.0f MB), running on onnxruntime with %d thread(s)',
             len(exported) / 1e6, threads)
    return onnxruntime.InferenceSession(exported, session_options(threads), providers=['CPUExecutionProvider'])


def _export(model: torch.nn.Module) -> bytes:
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
    return buffer.getvalue()


def _keep(exported: bytes, saved: Path) -> bool:
    """Write the export to `saved` through a temporary file (never half-written); a folder that cannot
    be written only costs the next process another export."""
    try:
        replace_atomically(saved, exported)
        return True
    except OSError as e:
        log.warning('cannot keep the ONNX text tower in %s (%s): it is exported again by the next process',
                    saved.parent, e.strerror or e)
        return False


def _probe(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """A probe sentence's tokens and what the model's own text path computes for them."""
    tokens = torch.arange(1, 12, dtype=torch.long).unsqueeze(0)
    tokens[0, -1] = model.token_embedding.num_embeddings - 1
    with torch.inference_mode():
        return tokens.numpy(), lean_text_transformer(model, tokens).numpy()
