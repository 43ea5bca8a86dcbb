"""OpenAI CLIP, loaded once per process (by name into weights/, or from a checkpoint path), and its encoders.

The encoders take what the executors hold (RGB uint8 arrays, strings) and return L2-normalised
float32 numpy embeddings; they apply CLIP's own preprocessing, batched in torch.
"""
import functools
import logging
import os
import threading
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import torch

from executors.base import Executor
from executors.errors import ConfigError, ModelError, QueryError

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / 'weights'
QUANTIZE_MODES = (None, 'int8')  # int8: dynamic quantisation of the Linear layers, CPU only
_lock = threading.Lock()


def resolve_device(device: str) -> str:
    """'auto' means CUDA when available, else CPU."""
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    return device


def load_clip(model: str, device: str = 'auto', download_root: str | Path = WEIGHTS_DIR,
              quantize: str | None = None) -> torch.nn.Module:
    """The CLIP model `model` on `device`, shared by every encoder of this process.

    `model` is a name from `clip.available_models()` (downloaded into `download_root` on first use)
    or the path of a checkpoint (TorchScript archive or OpenAI state_dict). Raises ModelError with
    what to do when the weights are missing or unreadable. `quantize='int8'` (CPU only) gives a
    dynamically quantised copy.
    """
    device = resolve_device(device)
    check_quantize(quantize, device)
    names = _available_models()
    key = model if model in names else str(Path(model).expanduser().resolve())
    if key not in names and not os.path.isfile(key):
        raise ModelError(f"model '{model}' is neither a CLIP model name ({', '.join(names)}) nor a checkpoint file")
    with _lock:
        return _load_cached(key, device, str(download_root), quantize)


def check_quantize(quantize: str | None, device: str) -> None:
    """Raise ConfigError unless `quantize` is a known mode that runs on `device`."""
    if quantize not in QUANTIZE_MODES:
        raise ConfigError(f"quantize must be one of {', '.join(map(str, QUANTIZE_MODES))}, not '{quantize}'")
    if quantize and resolve_device(device) != 'cpu':
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
    return _clip().available_models()


def _clip():
    """The clip package; its import warns that pkg_resources is deprecated, which users cannot act on."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        import clip
    return clip


@functools.cache
def _load_cached(model: str, device: str, download_root: str, quantize: str | None = None) -> torch.nn.Module:
    clip = _clip()
    if device == 'cpu':
        torch.set_num_threads(os.cpu_count() or 1)
    path = _download(model, Path(download_root)) if model in clip.available_models() else model
    log.info('loading CLIP from %s on %s', path, device)
    with warnings.catch_warnings():  # torch's deprecation notices about jit.load and quantisation, not ours to fix
        warnings.simplefilter('ignore', FutureWarning)
        warnings.simplefilter('ignore', DeprecationWarning)
        warnings.filterwarnings('ignore', message='.*quantize_per_tensor', category=UserWarning)
        try:
            clip_model = _load_checkpoint(path, device)
        except Exception as e:  # torch raises many types for a file that is not a checkpoint
            raise ModelError(f'{path} is not a CLIP checkpoint: {str(e).splitlines()[0][:200]}') from e
        if quantize == 'int8':
            # MultiheadAttention's projections stay fp32: it reads their weights directly
            clip_model = torch.ao.quantization.quantize_dynamic(clip_model, {torch.nn.Linear}, dtype=torch.qint8)
    return clip_model.eval()


def _load_checkpoint(path: str, device: str) -> torch.nn.Module:
    """clip.load(path, jit=False), except that a state_dict is unpickled with weights_only=True, so a
    checkpoint cannot run code whatever torch's default (clip.load leaves it to torch: False before 2.6)."""
    from clip.model import build_model

    try:
        state_dict = torch.jit.load(path, map_location='cpu').state_dict()  # OpenAI's TorchScript archives
    except RuntimeError:
        state_dict = torch.load(path, map_location='cpu', weights_only=True)
    model = build_model(state_dict).to(device)
    return model.float() if device == 'cpu' else model


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


# ----------------------------------------------------------------------------- encoding

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # per RGB channel, of CLIP's training images in [0, 1]
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MAX_SIDE_FACTOR = 8  # a huge query image is first subsampled to a short side of 8-16 input sizes


def input_size(model: torch.nn.Module) -> int:
    """The side of the square image the model reads (224 for ViT-B/32)."""
    return model.visual.input_resolution


def preprocess_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """CLIP's preprocessing of a batch of RGB images (N x H x W x 3, uint8 or float 0-255), in torch.

    The same steps as clip.load's transform: bicubic (antialiased) resize of the short side to
    `size`, centre crop to size x size, scale to [0, 1], normalise by CLIP's mean and std.
    Returns N x 3 x size x size float32 on the images' device.
    """
    x = images.permute(0, 3, 1, 2)
    height, width = x.shape[-2:]
    if min(height, width) != size:  # frames from the VideoLoader already have short side == size
        shape = (size, int(size * width / height)) if height <= width else (int(size * height / width), size)
        x = torch.nn.functional.interpolate(x.float(), size=shape, mode='bicubic', align_corners=False, antialias=True)
        x = x.round_().clamp_(0, 255)  # PIL resizes to uint8
        height, width = shape
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    x = x[..., top:top + size, left:left + size].float()
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1) * 255
    return (x - mean) / std


def encode_images(model: torch.nn.Module, images: list[np.ndarray]) -> np.ndarray:
    """L2-normalised float32 embeddings (N x D) of RGB uint8 images (H x W x 3), in one forward pass."""
    device, size = _device(model), input_size(model)
    with torch.inference_mode():
        if len({image.shape for image in images}) == 1:
            batch = preprocess_images(torch.from_numpy(np.stack(images)).to(device), size)
        else:
            batch = torch.cat([preprocess_images(torch.from_numpy(np.ascontiguousarray(image))[None].to(device), size)
                               for image in images])
        return _normalised(model.encode_image(batch))


def encode_query_image(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """The embedding (D,) of a query image of any size; raises QueryError if it is not an RGB image."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise QueryError(f'the query image must be RGB (height x width x 3), not an array of shape {image.shape}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise QueryError(f'the query image is empty ({image.shape[1]}x{image.shape[0]} pixels)')
    if image.dtype != np.uint8:
        raise QueryError(f'the query image must hold uint8 values 0-255, not {image.dtype}')
    size = input_size(model)
    pixels = torch.from_numpy(reduce_query_image(image, size))
    with torch.inference_mode():
        return _normalised(model.encode_image(preprocess_images(pixels[None].to(_device(model)), size)))[0]


def reduce_query_image(image: np.ndarray, size: int) -> np.ndarray:
    """A small copy of the part of `image` that CLIP's centre crop reads, whatever the image's size.

    The long side is cut to twice the short side around its centre (the crop never reaches further),
    then every n-th row and column is kept so the short side stays >= MAX_SIDE_FACTOR * size: only
    those pixels are copied, so even a 20000 x 20000 image (or a view of one) costs a few MiB, and
    the antialiased resize that follows still filters the remaining reduction.
    """
    height, width = image.shape[:2]
    keep = 2 * min(height, width)
    top, left = max(0, (height - keep) // 2), max(0, (width - keep) // 2)
    step = max(1, min(height, width) // (MAX_SIDE_FACTOR * size))
    return np.array(image[top:top + keep:step, left:left + keep:step])


def tokenize(texts: list[str], context_length: int = 77) -> torch.Tensor:
    """CLIP's BPE tokens (N x context_length); text beyond the context is cut off, ending in end-of-text."""
    return _clip().tokenize(texts, context_length=context_length, truncate=True)


def encode_tokens(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Exactly model.encode_text(tokens), running the text transformer only over the tokens that count.

    The transformer is causal and CLIP reads its output at the end-of-text token (the largest id),
    so the positions after the last end-of-text of the batch cannot change the result. clip-anytorch's
    encode_text slices the positional embedding and the causal mask to the length it is given.
    """
    length = int(tokens.argmax(dim=-1).max()) + 1
    return model.encode_text(tokens[:, :length])


def encode_texts(model: torch.nn.Module, texts: list[str]) -> np.ndarray:
    """L2-normalised float32 embeddings (N x D) of `texts`, in one forward pass."""
    tokens = tokenize(texts, model.context_length).to(_device(model))
    with torch.inference_mode():
        return _normalised(encode_tokens(model, tokens))


def _device(model: torch.nn.Module) -> torch.device:
    return model.token_embedding.weight.device


def _normalised(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    return (features / features.norm(dim=-1, keepdim=True)).cpu().numpy()
