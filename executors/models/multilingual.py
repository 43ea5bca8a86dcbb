"""A multilingual text tower aligned with a CLIP image space, so queries in 50+ languages search
keyframe vectors that CLIP's image tower made, unchanged.

The default is sentence-transformers' `clip-ViT-B-32-multilingual-v1` (Apache-2.0): multilingual
DistilBERT, mean pooling over the tokens, Dense 768 -> 512 without bias, distilled from OpenAI
ViT-B/32's text tower, so it lives in ViT-B/32's image space. It is loaded once per process: a name
is looked for in weights/<name>/ and downloaded there once when online; a folder path is loaded as
it is. Any sentence-transformers folder whose output is aligned with a CLIP image space works the
same way (say which CLIP with the TextEncoder's `aligned_to`).
"""
from __future__ import annotations

import functools
import logging
import shutil
import socket
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np

from executors.models.clip_model import WEIGHTS_DIR, check_quantize, resolve_device
from executors.errors import ModelError, first_line
from executors.models.text_tower import TextTower

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

DEFAULT_MODEL = 'clip-ViT-B-32-multilingual-v1'
HUB_ORGANISATION = 'sentence-transformers'  # a name without an owner/ is looked up under this one
SKIPPED_FILES = ['onnx/*', 'openvino/*', '*.h5', '*.msgpack', '*.ot', 'rust_model*', '.gitattributes']
_lock = threading.Lock()
_missing: dict[tuple[str, str], ModelError] = {}  # (name, download_root) -> why it could not be had, for the process's life


def load_multilingual(model: str = DEFAULT_MODEL, device: str = 'auto', download_root: str | Path = WEIGHTS_DIR,
                      quantize: str | None = None) -> torch.nn.Module:
    """The sentence-transformers model `model` on `device`, shared by every encoder of this process.

    `model` is a folder (loaded as it is) or a Hugging Face name ('clip-ViT-B-32-multilingual-v1' or
    'owner/name'), looked for in download_root/<name>/ and downloaded there once if absent. Raises
    ModelError in one line naming the folder to fill when it is absent and cannot be downloaded.
    `quantize='int8'` (CPU only) gives a dynamically quantised copy of its Linear layers.
    """
    device = resolve_device(device)
    check_quantize(quantize, device)
    with _lock:
        key = (model, str(download_root))
        if key in _missing:  # tried and failed in this process: no second download attempt per query
            raise _missing[key]
        try:
            folder = model_folder(model, Path(download_root))
        except ModelError as e:
            _missing[key] = e
            raise
        return _load_cached(str(folder), device, quantize)


def model_folder(model: str, download_root: Path = WEIGHTS_DIR) -> Path:
    """The folder that holds `model`, downloaded into download_root first when it is a name not there yet."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / 'modules.json').is_file():
            raise ModelError(f'{path} is not a sentence-transformers model folder (it has no modules.json)')
        return path.resolve()
    if _is_path(model):
        raise ModelError(f"multilingual text model '{model}' is not a folder")
    repo = model if '/' in model else f'{HUB_ORGANISATION}/{model}'
    target = download_root / repo.split('/')[-1]
    if not (target / 'modules.json').is_file():
        _download(repo, target)
    return target


def encode_sentences(model: torch.nn.Module, texts: list[str]) -> np.ndarray:
    """L2-normalised float32 embeddings (N x D) of `texts` in one forward pass; text beyond the
    model's max_seq_length tokens (128 for the default) is cut off."""
    import torch

    features = model.preprocess(texts)
    device = next(model.parameters(), torch.empty(0)).device
    features = {key: value.to(device) if torch.is_tensor(value) else value for key, value in features.items()}
    with torch.inference_mode():
        embeddings = model(features)['sentence_embedding'].float()
    return (embeddings / embeddings.norm(dim=-1, keepdim=True)).cpu().numpy()


class SentenceTextTower(TextTower):
    """A text tower whose embeddings live in the image space of the CLIP `aligned_to`.

    Nothing is loaded until the first `encode`; `space` is image_space_id(aligned_to).
    """

    kind = 'multilingual'

    def __init__(self, model: str = DEFAULT_MODEL, aligned_to: str = 'ViT-B/32', device: str = 'auto',
                 quantize: str | None = None):
        super().__init__(model, aligned_to, device, quantize)

    def load(self) -> torch.nn.Module:
        return load_multilingual(self.name, self.device, quantize=self.quantize)

    def encode(self, texts: list[str]) -> np.ndarray:
        return encode_sentences(self.model, texts)


def _is_path(model: str) -> bool:
    """Whether `model` is written as a path rather than a name or owner/name."""
    return model.startswith(('/', '.', '~')) or model.count('/') > 1 or '\\' in model or Path(model).exists()


def _download(repo: str, target: Path) -> None:
    """Download the repository `repo` into `target` through a temporary folder, so that a failed or
    interrupted download never leaves a folder that looks complete."""
    from huggingface_hub import constants, list_repo_files, snapshot_download

    partial = target.with_name(f'.{target.name}.partial')
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _reachable(constants.ENDPOINT)
        files = list_repo_files(repo)
        skipped = SKIPPED_FILES + (['*.bin'] if any(f.endswith('.safetensors') for f in files) else [])
        log.info('downloading %s into %s', repo, target)
        snapshot_download(repo, local_dir=partial, ignore_patterns=skipped)
        if not (partial / 'modules.json').is_file():
            raise FileNotFoundError(f'{repo} has no modules.json: it is not a sentence-transformers model')
        shutil.rmtree(partial / '.cache', ignore_errors=True)
        partial.rename(target)
    except Exception as e:  # huggingface_hub raises many types (offline, not found, HTTP, disk)
        shutil.rmtree(partial, ignore_errors=True)
        reason = first_line(e)
        raise ModelError(f"multilingual text model '{repo.split('/')[-1]}' is not in {target}/ and could not be "
                         f'downloaded ({reason}); download the files of https://huggingface.co/{repo} '
                         f'into {target}/') from e


def _reachable(endpoint: str, timeout: float = 3.0) -> None:
    """OSError at once when the hub's host cannot be reached (offline), instead of huggingface_hub's
    five retries over about 25 seconds; nothing when offline mode is on (the hub refuses by itself)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return
    url = urlsplit(endpoint)
    socket.create_connection((url.hostname, url.port or (443 if url.scheme == 'https' else 80)), timeout).close()


@functools.cache
def _load_cached(folder: str, device: str, quantize: str | None) -> torch.nn.Module:
    import torch

    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    log.info('loading the text model %s on %s', folder, device)
    bars = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # its "Loading weights" bar is noise on the CLI's stderr
    try:
        model = SentenceTransformer(folder, device=device, local_files_only=True)
    except Exception as e:  # transformers raises many types for a folder it cannot read
        reason = first_line(e)
        raise ModelError(f'{folder} is not a readable sentence-transformers model: {reason}') from e
    finally:
        if bars:
            transformers_logging.enable_progress_bar()
    model.eval()
    if device != 'cpu':
        model.half()
    if quantize == 'int8':
        with warnings.catch_warnings():  # torch's deprecation notice about torch.ao.quantization, not ours to fix
            warnings.simplefilter('ignore', DeprecationWarning)
            warnings.simplefilter('ignore', FutureWarning)
            warnings.filterwarnings('ignore', message='.*quantize_per_tensor', category=UserWarning)
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model
