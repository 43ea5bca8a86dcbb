"""CLIP's preprocessing and encoding, batched in torch: RGB uint8 arrays and strings in,
L2-normalised float32 numpy embeddings out."""
from pathlib import Path

import numpy as np
import torch

from executors.clip_model import clip_package
from executors.errors import ConfigError, QueryError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # per RGB channel, of CLIP's training images in [0, 1]
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_PRECISIONS = ('fp32', 'bf16')  # bf16: CPU autocast, opt-in
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

    precision 'bf16' (CPU): the matrix products in bfloat16 under autocast, fast where the CPU has
    AMX or AVX512-BF16; embeddings then differ from fp32 (cosine about 1e-4 below 1).
    """
    if precision not in IMAGE_PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(IMAGE_PRECISIONS)}, not '{precision}'")
    device, size = _device(model), input_size(model)
    with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16'):
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
    return clip_package().tokenize(texts, context_length=context_length, truncate=True)


def encode_tokens(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Exactly model.encode_text(tokens), running the text transformer only over the tokens that count.

    The transformer is causal and CLIP reads its output at the end-of-text token (the largest id),
    so the positions after the last end-of-text of the batch cannot change the result. clip-anytorch's
    encode_text slices the positional embedding and the causal mask to the length it is given.
    On the CPU a stock text tower runs through `lean_text_transformer` (equal within 1e-5).
    """
    length = int(tokens.argmax(dim=-1).max()) + 1
    if has_lean_text_path(model) and tokens.device.type == 'cpu':
        return lean_text_transformer(model, tokens[:, :length])
    return model.encode_text(tokens[:, :length])


def has_lean_text_path(model: torch.nn.Module) -> bool:
    """Whether `model`'s text tower is CLIP's own (every block plain MultiheadAttention + MLP, no tuned
    parts): then lean_text_transformer computes exactly what its encode_text does."""
    if getattr(model, 'is_tuned', False):
        return False
    return all(type(block.attn) is torch.nn.MultiheadAttention and block.attn.batch_first is False
               for block in model.transformer.resblocks)


def lean_text_transformer(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """model.encode_text(tokens) for a stock text tower, batch-first and with fused causal attention
    (scaled_dot_product_attention) instead of nn.MultiheadAttention with an explicit mask: fewer
    operators and copies per block, which is most of the cost of a short query at batch 1."""
    length = tokens.shape[1]
    x = model.token_embedding(tokens).type(model.dtype) + model.positional_embedding[:length].type(model.dtype)
    for block in model.transformer.resblocks:
        x = x + _causal_attention(block.attn, block.ln_1(x))
        x = x + block.mlp(block.ln_2(x))
    x = model.ln_final(x).type(model.dtype)
    return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ model.text_projection


def _causal_attention(attn: torch.nn.MultiheadAttention, x: torch.Tensor) -> torch.Tensor:
    batch, length, width = x.shape
    heads = attn.num_heads
    qkv = torch.nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    mixed = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    return attn.out_proj(mixed.transpose(1, 2).reshape(batch, length, width))


def encode_texts(model: torch.nn.Module, texts: list[str], runtime: str = 'torch',
                 saved_export: Path | None = None) -> np.ndarray:
    """L2-normalised float32 embeddings (N x D) of `texts`, in one forward pass.

    runtime: 'torch'; 'onnxruntime' (CPU, fp32 stock towers: executors/text_onnx.py, threads of its
    own, so a query does not wait on torch's thread pool while other work loads the cores; its export
    kept in `saved_export`); or 'auto': onnxruntime where it can run the model, else torch.
    """
    if runtime not in TEXT_RUNTIMES:
        raise ConfigError(f"text runtime must be one of {', '.join(TEXT_RUNTIMES)}, not '{runtime}'")
    tokens = tokenize(texts, model.context_length).to(_device(model))
    if runtime != 'torch':
        from executors.text_onnx import encode_tokens_onnx, onnx_suits  # it builds on this module

        if runtime == 'onnxruntime' or onnx_suits(model):
            return _normalised(encode_tokens_onnx(model, tokens, saved=saved_export))
    with torch.inference_mode():
        return _normalised(encode_tokens(model, tokens))


def _device(model: torch.nn.Module) -> torch.device:
    return model.token_embedding.weight.device


def _normalised(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    return (features / features.norm(dim=-1, keepdim=True)).cpu().numpy()
