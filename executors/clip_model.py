"""Loads OpenAI CLIP once per process, by model name (downloaded into weights/) or checkpoint path."""
import functools
import logging
import os
import threading
import urllib.error
from pathlib import Path

import torch

from executors.errors import ModelError

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / 'weights'
_lock = threading.Lock()


def resolve_device(device: str) -> str:
    """'auto' means CUDA when available, else CPU."""
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    return device


def load_clip(model: str, device: str = 'auto', download_root: str | Path = WEIGHTS_DIR) -> torch.nn.Module:
    """The CLIP model `model` on `device`, shared by every encoder of this process.

    `model` is a name from `clip.available_models()` (downloaded into `download_root` on first use)
    or the path of a checkpoint (TorchScript archive or OpenAI state_dict). Raises ModelError with
    what to do when the weights are missing or unreadable.
    """
    device = resolve_device(device)
    key = model if model in _available_models() else str(Path(model).expanduser().resolve())
    with _lock:
        return _load_cached(key, device, str(download_root))


def _available_models() -> list[str]:
    import clip

    return clip.available_models()


@functools.cache
def _load_cached(model: str, device: str, download_root: str) -> torch.nn.Module:
    import clip

    if device == 'cpu':
        torch.set_num_threads(os.cpu_count() or 1)
    if model in clip.available_models():
        path = _download(model, Path(download_root))
    elif os.path.isfile(model):
        path = model
    else:
        names = ', '.join(clip.available_models())
        raise ModelError(f"model '{model}' is neither a CLIP model name ({names}) nor a checkpoint file")
    log.info('loading CLIP from %s on %s', path, device)
    try:
        clip_model, _ = clip.load(path, device=device, jit=False)
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        raise ModelError(f'{path} is not a CLIP checkpoint: {str(e).splitlines()[0][:200]}') from e
    return clip_model.eval()


def _download(name: str, download_root: Path) -> str:
    """Path of the checkpoint `name` under download_root, downloaded (with a progress bar) if absent."""
    from clip.clip import _MODELS, _download as clip_download

    url = _MODELS[name]
    target = download_root / os.path.basename(url)
    existed = target.exists()
    try:
        return clip_download(url, str(download_root))
    except (urllib.error.URLError, OSError, RuntimeError) as e:
        if not existed:
            target.unlink(missing_ok=True)  # never leave a partial download behind
        raise ModelError(
            f"CLIP weights '{name}' are not in {download_root}/ and could not be downloaded ({e}); "
            f'download {url} and place it at {target}'
        ) from e
