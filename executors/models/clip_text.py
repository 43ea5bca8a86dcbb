"""CLIP's text tower run lean: tokens in, the text transformer only as far as the longest end-of-text
token of the batch, fused causal attention on the CPU. Exactly what model.encode_text returns."""
import torch

from executors.models import clip_tokens


def tokenize(texts: list[str], context_length: int = 77) -> torch.Tensor:
    """CLIP's BPE tokens (N x context_length); text beyond the context is cut off, ending in end-of-text."""
    return torch.from_numpy(clip_tokens.tokenize(texts, context_length))


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
