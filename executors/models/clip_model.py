"""OpenAI CLIP, loaded once per process (by name into weights/, or from a checkpoint path), and the
encoders' shared base. The preprocessing and encoding functions are in clip_encoding.py.

torch, clip and the tuned-model code are imported on first use: /list, /delete and /transcript never
need them (torch alone takes 1-3 s to import)."""
from __future__ import annotations

import functools
import logging
import os
import pickle
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from executors.base import Executor
from executors.errors import ConfigError, ModelError
from executors.models.clip_weights import CHECKPOINTS, WEIGHTS_DIR, checkpoint_sha256, download
from executors.file_facts import file_sha256
from executors.models.tuned_file import is_tuned_file

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

QUANTIZE_MODES = (None, 'int8')  # int8: dynamic quantisation of the Linear layers, CPU only
_lock = threading.Lock()


def resolve_device(device: str) -> str:
    """'auto' means CUDA when available, else CPU; CUDA asked for where torch sees none is a ConfigError."""
    if device == 'auto' or str(device).startswith('cuda'):
        import torch
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if str(device).startswith('cuda') and not torch.cuda.is_available():
        raise ConfigError(f"device '{device}': torch sees no CUDA GPU on this machine (use cpu, or auto)")
    return device


def load_clip(model: str, device: str = 'auto', download_root: str | Path = WEIGHTS_DIR,
              quantize: str | None = None) -> torch.nn.Module:
    """The CLIP model `model` on `device`, shared by every encoder of this process.

    `model` is a name from `clip.available_models()` (downloaded into `download_root` on first use),
    the path of a checkpoint (TorchScript archive or OpenAI state_dict), or a tuned file written by
    `flow.py train` (its base is loaded and the trained parts installed: executors/models/tuned_model.py).
    Raises ModelError with what to do when the weights are missing or unreadable. `quantize='int8'`
    (CPU only) gives a dynamically quantised copy.
    """
    check_quantize(quantize, device)
    device = resolve_device(device)
    names = _available_models()
    key = model if model in names else str(Path(model).expanduser().resolve())
    if key not in names and not os.path.isfile(key):
        raise ModelError(f"model '{model}' is neither a CLIP model name ({', '.join(names)}) nor a checkpoint file")
    with _lock:
        return _load_cached(key, device, str(download_root), quantize)


def load_base_copy(model: str, device: str = 'cpu', download_root: str | Path = WEIGHTS_DIR) -> torch.nn.Module:
    """An unshared fp32 copy of a base CLIP (a name or a checkpoint path, not a tuned file), for training."""
    device = resolve_device(device)
    names = _available_models()
    if model not in names:
        if not os.path.isfile(model):
            raise ModelError(f"model '{model}' is neither a CLIP model name ({', '.join(names)}) nor a checkpoint file")
        if is_tuned_file(model):
            raise ModelError(f'{model}: a tuned file cannot be the base of another; train from its base model')
    path = _download(model, Path(download_root)) if model in names else model
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        return load_checkpoint(path, device).float()


def check_quantize(quantize: str | None, device: str) -> None:
    """Raise ConfigError unless `quantize` is a known mode that runs on `device`."""
    if quantize not in QUANTIZE_MODES:
        raise ConfigError(f"quantize must be one of {', '.join(map(str, QUANTIZE_MODES))}, not '{quantize}'")
    if quantize and (str(device).startswith('cuda') or resolve_device(device) != 'cpu'):
        raise ConfigError(f"quantize '{quantize}' runs on the CPU only; set device: cpu or leave quantize out")


class ClipEncoder(Executor):
    """Base of the CLIP encoders: the process's shared model, loaded on first use (so /list and
    /delete never need the weights), and `batch_size` inputs per forward pass.

    model: a clip.available_models() name or a checkpoint path; device: 'auto', 'cpu' or 'cuda';
    quantize: None or 'int8' (CPU only, dynamic quantisation of the Linear layers).
    """

    def __init__(self, model: str = 'ViT-B/32', device: str = 'auto', batch_size: int = 32,
                 quantize: str | None = None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size must be a whole number >= 1, not {batch_size!r}')
        check_quantize(quantize, device)
        self.model_name, self.device, self.batch_size, self.quantize = model, device, batch_size, quantize

    @property
    def model(self) -> torch.nn.Module:
        return load_clip(self.model_name, self.device, quantize=self.quantize)


def _available_models() -> list[str]:
    return list(CHECKPOINTS)  # clip.available_models(), without importing clip (and torch)


def _tuned():
    from executors.models import tuned_model

    return tuned_model


def clip_package():
    """The clip package; its import warns that pkg_resources is deprecated, which users cannot act on."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        import clip
    return clip


@functools.cache
def _load_cached(model: str, device: str, download_root: str, quantize: str | None = None) -> torch.nn.Module:
    import torch

    clip = clip_package()
    if device == 'cpu':
        torch.set_num_threads(os.cpu_count() or 1)
    with warnings.catch_warnings():  # torch's deprecation notices about jit.load and quantisation, not ours to fix
        warnings.simplefilter('ignore', FutureWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.filterwarnings('ignore', message='.*quantize_per_tensor', category=UserWarning)
        if model not in clip.available_models() and is_tuned_file(model):
            clip_model = _load_tuned(model, device, Path(download_root))
        else:
            path = _download(model, Path(download_root)) if model in clip.available_models() else model
            log.info('loading CLIP from %s on %s', path, device)
            clip_model = load_checkpoint(path, device)
        if quantize == 'int8':
            # MultiheadAttention's projections stay fp32: it reads their weights directly
            clip_model = torch.ao.quantization.quantize_dynamic(clip_model, {torch.nn.Linear}, dtype=torch.qint8)
    return clip_model.eval()


def load_checkpoint(path: str, device: str) -> torch.nn.Module:
    """A fresh (unshared) CLIP from a checkpoint file; ModelError when it is not one."""
    try:
        return _load_checkpoint(path, device)
    except pickle.UnpicklingError as e:  # weights_only refused an object: loading it could run code
        raise ModelError(f'{path} is not a CLIP checkpoint VCED can load safely: it holds Python objects beyond '
                         f'tensors, which could run code when loaded; use a plain state_dict or an OpenAI '
                         f'TorchScript archive') from e
    except Exception as e:  # torch raises many types for a file that is not a checkpoint
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelError(f'{path} is not a CLIP checkpoint ({_sentence(reason)})') from e


def _sentence(text: str, limit: int = 160) -> str:
    """`text` cut at a word boundary with an ellipsis, so a cut message never reads as a different one."""
    return text if len(text) <= limit else text[:limit].rsplit(' ', 1)[0] + ' …'


def _load_tuned(path: str, device: str, download_root: Path) -> torch.nn.Module:
    """A fresh copy of the tuned file's base with its trained parts installed."""
    data = _tuned().read_tuned(path)
    base = tuned_base_path(path, data, download_root)
    log.info('loading tuned CLIP %s (%s) on base %s on %s', path, data['method'], base, device)
    return _tuned().apply_tuned(load_checkpoint(base, device), data, path)


def tuned_base_path(path: str, data: dict, download_root: Path = WEIGHTS_DIR) -> str:
    """The checkpoint file of a tuned file's base, checked against the identity it was trained on."""
    base, recorded = str(data['base'].get('model', '')), str(data['base'].get('identity', ''))
    names = _available_models()
    if base not in names and not os.path.isfile(base):
        raise ModelError(f"{path}: its base model '{base}' is missing (neither a CLIP model name nor a file); "
                         'put the base checkpoint back at that path')
    identity = image_space_id(base)
    if identity != recorded:
        raise ModelError(f"{path}: its base model '{base}' is not the one it was trained on "
                         f'(identity {identity[:12]}, expected {recorded[:12]})')
    return _download(base, download_root) if base in names else base


def _load_checkpoint(path: str, device: str) -> torch.nn.Module:
    """clip.load(path, jit=False), except that nothing in the file can run code: a state_dict is unpickled
    with weights_only=True, and a TorchScript archive's weights are read without torch.jit.load."""
    import torch

    from executors.models.archive_weights import is_archive

    build_model = clip_package().model.build_model  # clip_package: without its pkg_resources warning

    if is_archive(path):  # OpenAI's TorchScript archives: their weights are read, their code never run
        state_dict = _archive_weights(path)
    else:
        state_dict = torch.load(path, map_location='cpu', weights_only=True)
    model = build_model(state_dict).to(device)
    return model.float() if device == 'cpu' else model


def _archive_weights(path: str) -> dict:
    """An archive's weights; where this reader cannot follow a file that is one of OpenAI's published
    checkpoints (its sha256 says so), that trusted file is opened with torch.jit.load instead."""
    import torch

    from executors.models.archive_weights import archive_state_dict

    try:
        return archive_state_dict(path)
    except (KeyError, ValueError, TypeError, RuntimeError, StopIteration) as e:
        status = os.stat(path)
        if _file_sha256(path, status.st_size, status.st_mtime_ns) not in {checkpoint_sha256(name) for name in CHECKPOINTS}:
            raise ModelError(f'{path}: a TorchScript archive VCED cannot read without running its code ({e}); if you '
                             f"trust it, save its weights: torch.save(torch.jit.load(path).state_dict(), 'model.pt')") from e
        return torch.jit.load(path, map_location='cpu').state_dict()


def _download(name: str, download_root: Path) -> str:
    return str(download(name, download_root))


# ----------------------------------------------------------------------------- identity of the image space


def image_space_id(model: str) -> str:
    """The identity of the embedding space `model`'s image tower maps keyframes into: the sha256 of
    its checkpoint file. OpenAI's download URLs carry that sha256, so a model named like 'ViT-B/32'
    and the same checkpoint given by path have one identity, with nothing to download or hash.

    A workspace records it when it stores its first vectors and refuses queries and videos from
    another space (two checkpoints of the same width still map images to unrelated vectors).
    A tuned file whose method leaves the image tower alone (`query`) has its base's identity; one
    that changes it (`adapter`, `prompt`) has its own file's sha256.
    """
    names = _available_models()
    if model in names:
        return checkpoint_sha256(model)
    path = Path(model).expanduser().resolve()
    try:
        status = path.stat()
        if not path.is_file():
            raise IsADirectoryError(f'{path} is a folder')
        return _file_identity(str(path), status.st_size, status.st_mtime_ns)
    except OSError as e:
        raise ModelError(f"model '{model}' is neither a CLIP model name ({', '.join(names)}) nor a checkpoint file") from e


@functools.cache
def _file_identity(path: str, size: int, mtime_ns: int) -> str:
    if is_tuned_file(path):
        data = _tuned().read_tuned(path)
        if not _tuned().changes_image_space(data['method']):
            return str(data['base']['identity'])
    return _file_sha256(path, size, mtime_ns)


@functools.cache
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    """sha256 of a file, computed once for a given size and modification time (remembered in weights/)."""
    return file_sha256(path, size, mtime_ns)
