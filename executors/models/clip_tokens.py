"""CLIP's BPE tokens without torch: the clip package's own tokenizer module, loaded from its file, so that a
text query run on a saved ONNX text tower never imports torch (the package's __init__ does: 1.5 s)."""
import functools
import importlib.util
from pathlib import Path

import numpy as np

from executors.errors import ModelError


def tokenize(texts: list[str], context_length: int = 77) -> np.ndarray:
    """int64 tokens (N x context_length), as clip.tokenize(texts, context_length, truncate=True) gives them:
    start-of-text, the text's BPE tokens, end-of-text (the largest id), zeros after; text beyond the
    context is cut off and the last token made end-of-text."""
    tokenizer = _tokenizer()
    start, end = tokenizer.encoder['<|startoftext|>'], tokenizer.encoder['<|endoftext|>']
    tokens = np.zeros((len(texts), context_length), dtype=np.int64)
    for row, text in zip(tokens, texts):
        ids = [start, *tokenizer.encode(text)][:context_length - 1] + [end]
        row[:len(ids)] = ids
    return tokens


@functools.cache
def _tokenizer():
    spec = importlib.util.find_spec('clip')  # finds the package without running its __init__
    if spec is None or not spec.submodule_search_locations:
        raise ModelError('the clip package is not installed: pip install clip-anytorch')
    path = Path(next(iter(spec.submodule_search_locations))) / 'simple_tokenizer.py'
    module_spec = importlib.util.spec_from_file_location('vced_clip_simple_tokenizer', path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.SimpleTokenizer()
