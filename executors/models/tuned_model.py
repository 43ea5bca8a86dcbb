"""Tuned CLIP: the small trained parts a tuned file holds, installed into a frozen base model.

Three methods, each zero-initialised so that a freshly built tuned model equals its base:
- `query`: a residual bottleneck MLP on the text embedding; both towers unchanged (same image space).
- `adapter`: AIM-style bottleneck adapters in every ViT block, one after the attention and one in
  parallel with the MLP; changes the image tower.
- `prompt`: VoP-style learnable prompt tokens in every block of the chosen towers, read through the
  block's own attention projections with a zero-initialised gate per head (prefix attention).

A tuned file is one torch.save'd dict of plain tensors, strings and numbers, read with
weights_only=True: {'format', 'version', 'method', 'config', 'base': {'model', 'identity'},
'state' (trained parameters only), 'settings', 'metrics'}. The parts live here, below the training
layer, because the encoders' model loader installs them.
"""
import functools
import math
import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from executors.errors import ModelError, VcedError
from executors.models.tuned_file import FORMAT, is_tuned_file  # noqa: F401 - is_tuned_file: part of this module's interface

VERSION = 1
METHODS = ('query', 'adapter', 'prompt')
DEFAULTS = {  # per method: the shape of the trained parts
    'query': {'hidden': 256},            # bottleneck width of the text-embedding adapter
    'adapter': {'bottleneck': 64, 'mlp_scale': 0.5},  # AIM: ViT width -> 64 -> width; MLP adapter scaled 0.5
    'prompt': {'tokens': 8, 'towers': ['text', 'visual']},  # prompt tokens per block, in which towers
}


class Bottleneck(nn.Module):
    """down -> GELU -> up, with `up` zero-initialised: it adds nothing until trained."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.down, self.up = nn.Linear(width, hidden), nn.Linear(hidden, width)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(F.gelu(self.down(x)))


class QueryAdapter(nn.Module):
    """t + |t| * mlp(t / |t|): a residual change of the text embedding's direction, scale kept."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.mlp = Bottleneck(dim, hidden)

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        norm = text.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return text + norm * self.mlp(text / norm).to(text.dtype)


class AdaptedAttention(nn.Module):
    """A block's attention followed by AIM's spatial adapter: out + adapter(out)."""

    def __init__(self, attn: nn.MultiheadAttention, bottleneck: int):
        super().__init__()
        self.inner, self.adapter = attn, Bottleneck(attn.embed_dim, bottleneck)

    def forward(self, *args, **kwargs):
        out, weights = self.inner(*args, **kwargs)
        return out + self.adapter(out), weights


class AdaptedMlp(nn.Module):
    """A block's MLP with AIM's joint adapter beside it: mlp(x) + scale * adapter(x)."""

    def __init__(self, mlp: nn.Module, width: int, bottleneck: int, scale: float):
        super().__init__()
        self.inner, self.adapter, self.scale = mlp, Bottleneck(width, bottleneck), scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) + self.scale * self.adapter(x)


class PromptedAttention(nn.Module):
    """A block's attention plus attention of every position over `tokens` learnable prompts, through
    the block's own projections, scaled by tanh(gate) per head (gate 0: the block is unchanged).

    Prompts are keys and values only, seen by every position: the causal text mask, the token count
    and the end-of-text position stay as they are (so the encoders' shortened text path still holds).
    """

    def __init__(self, attn: nn.MultiheadAttention, tokens: int):
        super().__init__()
        self.inner = attn
        self.prompts = nn.Parameter(torch.randn(tokens, attn.embed_dim) * 0.02)
        self.gate = nn.Parameter(torch.zeros(attn.num_heads))

    def forward(self, query: torch.Tensor, *args, **kwargs):
        out, weights = self.inner(query, *args, **kwargs)
        attn, heads = self.inner, self.inner.num_heads
        width = attn.embed_dim
        w, b = attn.in_proj_weight, attn.in_proj_bias
        q = F.linear(query, w[:width], b[:width])                       # L x N x D
        k = F.linear(self.prompts.to(query.dtype), w[width:2 * width], b[width:2 * width])  # P x D
        v = F.linear(self.prompts.to(query.dtype), w[2 * width:], b[2 * width:])
        length, batch, _ = q.shape
        q = q.reshape(length, batch, heads, width // heads)
        k, v = (t.reshape(-1, heads, width // heads) for t in (k, v))
        scores = torch.einsum('lnhd,phd->lnhp', q, k) / math.sqrt(width // heads)
        mixed = torch.einsum('lnhp,phd->lnhd', scores.softmax(dim=-1), v)
        mixed = mixed * torch.tanh(self.gate).to(query.dtype)[:, None]
        return out + F.linear(mixed.reshape(length, batch, width), attn.out_proj.weight), weights


def install(model: nn.Module, method: str, config: dict) -> nn.Module:
    """Add `method`'s zero-initialised parts to `model` (in place); its encode_text and encode_image
    apply them from now on. Returns the model, whose class becomes TunedCLIP."""
    if method not in METHODS:
        raise ModelError(f"unknown tuning method '{method}' (valid: {', '.join(METHODS)})")
    config = DEFAULTS[method] | dict(config)
    if method == 'query':
        model.query_adapter = QueryAdapter(model.text_projection.shape[1], int(config['hidden']))
    elif method == 'adapter':
        for block in model.visual.transformer.resblocks:
            width = block.attn.embed_dim
            block.attn = AdaptedAttention(block.attn, int(config['bottleneck']))
            block.mlp = AdaptedMlp(block.mlp, width, int(config['bottleneck']), float(config['mlp_scale']))
    else:
        towers = {'text': model.transformer, 'visual': model.visual.transformer}
        unknown = [t for t in config['towers'] if t not in towers]
        if unknown or not config['towers']:
            raise ModelError(f"prompt towers must be some of text, visual, not {config['towers']}")
        for name in config['towers']:
            for block in towers[name].resblocks:
                block.attn = PromptedAttention(block.attn, int(config['tokens']))
    added = {name for name in trainable_names(model)}
    for name, parameter in model.named_parameters():
        if name in added:  # the base's device and precision (fp16 on CUDA)
            parameter.data = parameter.data.to(model.text_projection.device, model.dtype)
    model.__class__ = _tuned_class(type(model))
    return model


def trainable_names(model: nn.Module) -> list[str]:
    """The state_dict keys of the installed parts: what training changes and a tuned file holds."""
    return [name for name, _ in model.named_parameters()
            if name.startswith('query_adapter.') or '.adapter.' in name or name.endswith(('.prompts', '.gate'))]


@functools.cache
def _tuned_class(base: type) -> type:
    if getattr(base, 'is_tuned', False):
        return base

    class TunedCLIP(base):
        """CLIP whose text embedding passes through its query adapter, when it has one."""

        is_tuned = True

        def encode_text(self, text):
            features = super().encode_text(text)
            adapter = getattr(self, 'query_adapter', None)
            return features if adapter is None else adapter(features)

    return TunedCLIP


# ----------------------------------------------------------------------------- the tuned file


def read_tuned(path: str | Path) -> dict:
    """The tuned file's dict; ModelError (one line) when it is not a readable tuned file."""
    try:
        data = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:  # torch raises many types for a damaged file
        raise ModelError(f'{path}: not a readable tuned file ({str(e).splitlines()[0][:200]})') from e
    if not isinstance(data, dict) or data.get('format') != FORMAT:
        raise ModelError(f'{path}: not a tuned file (no {FORMAT!r} format mark)')
    if data.get('version') != VERSION or data.get('method') not in METHODS:
        raise ModelError(f"{path}: tuned file version {data.get('version')} / method {data.get('method')!r} "
                         f'is not one this VCED reads (version {VERSION}, methods {", ".join(METHODS)})')
    return data


def write_tuned(path: str | Path, method: str, config: dict, base: dict, state: dict, settings: dict,
                metrics: dict | None = None) -> Path:
    """Write a tuned file atomically (a reader never sees half of it): only the trained parameters."""
    path = Path(path)
    body = {'format': FORMAT, 'version': VERSION, 'method': method, 'config': DEFAULTS[method] | dict(config),
            'base': dict(base), 'state': {k: v.detach().float().cpu().clone() for k, v in state.items()},
            'settings': dict(settings), 'metrics': dict(metrics or {})}
    partial = path.with_name(f'.{path.name}.{os.getpid()}.partial')
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(body, partial)
        os.replace(partial, path)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise VcedError(f'{path}: cannot write the tuned file ({e.strerror or e})') from e
    return path


def apply_tuned(model: nn.Module, data: dict, path: str | Path) -> nn.Module:
    """Install the tuned file's parts into `model` (a fresh base) and load their trained values."""
    install(model, data['method'], data['config'])
    expected = set(trainable_names(model))
    state = data['state']
    if set(state) != expected:
        raise ModelError(f'{path}: its parameters do not fit its base model '
                         f'({len(set(state) - expected)} unexpected, {len(expected - set(state))} missing)')
    model.load_state_dict(state, strict=False)  # copied into the parameters: their device and precision stay
    return model


def changes_image_space(method: str) -> bool:
    """Whether a tuned file of `method` embeds images differently from its base."""
    return method != 'query'
