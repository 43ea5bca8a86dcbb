"""A CLIP text tower exported to ONNX (executors/models/text_onnx.py), run from its saved file alone: a text
query then needs neither torch nor the checkpoint (a cold `flow.py search` saves their 3-5 s of loading).

Beside each saved export lies its probe, <export>.probe.json: a few tokens and the features CLIP's own text
path gave for them when the export was checked against the checkpoint. A saved export is used only while it
still computes those features; otherwise the caller falls back to the torch path, which checks (or exports)
again and writes the probe anew."""
import functools
import importlib.metadata
import json
import logging
import os
import threading
from pathlib import Path

import numpy as np

from executors.atomic import replace_atomically
from executors.models.clip_weights import WEIGHTS_DIR

log = logging.getLogger(__name__)
CACHE_DIR = WEIGHTS_DIR / 'onnx'  # exported text towers, <checkpoint identity>-text-torch<version>.onnx
THREADS = min(2, os.cpu_count() or 1)  # measured best on 2 cores, idle and busy; a short query gains little more
AGREEMENT = 1e-4  # largest difference from the torch path a saved export may show before it is used
_sessions: dict[tuple[str, int], object] = {}  # (export file, threads): session, or None where it cannot be used
_lock = threading.Lock()


def session_options(threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    # threads that spin after a query take the cores from the search that follows it (p99 50 -> 20 ms end to end)
    options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def cache_file(identity: str) -> Path:
    """Where the export of the text tower of the checkpoint `identity` (image_space_id) is kept: per torch
    version, which made it."""
    return CACHE_DIR / f'{identity}-text-torch{_torch_version()}.onnx'


@functools.cache
def _torch_version() -> str:
    return importlib.metadata.version('torch').split('+')[0]  # torch.__version__ without importing torch


def features(session, tokens: np.ndarray) -> np.ndarray:
    """The text tower's output (N x D, float32) for int64 `tokens` (N x context), computed only over the
    positions up to the last end-of-text token (the largest id) of the batch: the tower is causal."""
    length = int(tokens.argmax(axis=-1).max()) + 1
    return session.run(None, {'tokens': np.ascontiguousarray(tokens[:, :length], np.int64)})[0]


def probe_file(saved: Path) -> Path:
    return saved.with_name(saved.name + '.probe.json')


def write_probe(saved: Path, tokens: np.ndarray, expected: np.ndarray, context_length: int) -> None:
    """Keep what the checkpoint's text path gave for `tokens` beside the export `saved` (atomically)."""
    body = {'context_length': context_length, 'tokens': tokens.tolist(), 'features': expected.tolist()}
    try:
        replace_atomically(probe_file(saved), json.dumps(body).encode())
    except OSError as e:
        log.warning('cannot keep the probe of %s (%s): text queries will load the checkpoint', saved, e.strerror or e)


def saved_text_session(saved: Path, threads: int = THREADS) -> tuple[object, int] | None:
    """(session, context length) of the saved export `saved` when it and its probe are there and still agree,
    else None; decided once per process."""
    key = (str(saved), threads)
    with _lock:
        if key not in _sessions:
            _sessions[key] = _checked(saved, threads)
        return _sessions[key]


def _checked(saved: Path, threads: int) -> tuple[object, int] | None:
    try:
        probe = json.loads(probe_file(saved).read_text())
        tokens, expected = np.array(probe['tokens'], np.int64), np.array(probe['features'], np.float32)
        context_length = int(probe['context_length'])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning('%s is unreadable (%s): the text tower is checked against its checkpoint again',
                    probe_file(saved), e)
        return None
    session = agreeing_session(saved, threads, tokens, expected, 'does not compute what it did when checked',
                               'checking it against its checkpoint again')
    return None if session is None else (session, context_length)


def agreeing_session(saved: Path, threads: int, tokens: np.ndarray, expected: np.ndarray, mismatch: str, then: str):
    """An onnxruntime session of the export `saved` when it computes `expected` for `tokens` (within AGREEMENT);
    else None, with a warning: '<saved> is unreadable (why): <then>' or '<saved> <mismatch>: <then>'."""
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(saved), session_options(threads), providers=['CPUExecutionProvider'])
        got = features(session, tokens)
        if got.shape == expected.shape and np.abs(got - expected).max() <= AGREEMENT:
            return session
    except ImportError:
        return None
    except Exception as e:  # onnxruntime raises its own error types for an unreadable file
        log.warning('%s is unreadable (%s): %s', saved, str(e).splitlines()[0][:160], then)
        return None
    log.warning('%s %s: %s', saved, mismatch, then)
    return None
