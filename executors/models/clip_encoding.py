"""CLIP's preprocessing and encoding, batched in torch: RGB uint8 arrays and strings in,
L2-normalised float32 numpy embeddings out. torch is imported on first use (see clip_model.py)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from executors.errors import ConfigError, QueryError
from executors.vectors import unit_rows

if TYPE_CHECKING:
    import torch

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # per RGB channel, of CLIP's training images in [0, 1]
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TEXT_RUNTIMES = ('auto', 'torch', 'onnxruntime')  # what runs the text tower (auto: onnxruntime where it can)
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
    import torch

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


def encode_images(model: torch.nn.Module, images: list[np.ndarray], precision: str = 'fp32') -> np.ndarray:
    """L2-normalised float32 embeddings (N x D) of RGB uint8 images (H x W x 3), in one forward pass.

    precision 'bf16' (CPU or CUDA): the matrix products in bfloat16 under autocast, fast where the
    hardware has it (executors.models.precision); embeddings then differ from fp32 (cosine about 1e-4 below 1).
    """
    import torch

    if precision not in ('fp32', 'bf16'):
        raise ConfigError(f"precision must be fp32 or bf16 here, not '{precision}'")
    device, size = _device(model), input_size(model)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == 'bf16'):
        if len({image.shape for image in images}) == 1:
            batch = preprocess_images(torch.from_numpy(np.stack(images)).to(device), size)
        else:
            batch = torch.cat([preprocess_images(torch.from_numpy(np.ascontiguousarray(image))[None].to(device), size)
                               for image in images])
        return _normalised(model.encode_image(batch))


def encode_query_image(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """The embedding (D,) of a query image of any size; raises QueryError if it is not an RGB image."""
    import torch

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


def encode_texts(model: torch.nn.Module, texts: list[str], runtime: str = 'torch',
                 saved_export: Path | None = None) -> np.ndarray:
    """L2-normalised float32 embeddings (N x D) of `texts`, in one forward pass.

    runtime: 'torch'; 'onnxruntime' (CPU, fp32 stock towers: executors/models/text_onnx.py, threads of its
    own, so a query does not wait on torch's thread pool while other work loads the cores; its export
    kept in `saved_export`); or 'auto': onnxruntime where it can run the model, else torch.
    """
    import torch

    from executors.models.clip_text import encode_tokens, tokenize
    from executors.models.text_onnx import encode_tokens_onnx, onnx_suits

    if runtime not in TEXT_RUNTIMES:
        raise ConfigError(f"text runtime must be one of {', '.join(TEXT_RUNTIMES)}, not '{runtime}'")
    tokens = tokenize(texts, model.context_length).to(_device(model))
    if runtime != 'torch':
        if runtime == 'onnxruntime' or onnx_suits(model):
            return unit_rows(encode_tokens_onnx(model, tokens, saved=saved_export).numpy())  # as the saved export's path
    with torch.inference_mode():
        return _normalised(encode_tokens(model, tokens))


def _device(model: torch.nn.Module) -> torch.device:
    return model.token_embedding.weight.device


def _normalised(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    return (features / features.norm(dim=-1, keepdim=True)).cpu().numpy()
