"""What one training step computes, per method: the batch's loss and the validation R@1.

QueryMethod works on embeddings computed once (both towers frozen: only the query adapter runs).
BackboneMethod runs the frozen CLIP, with its adapters or prompts, forward and backward on decoded
frames (and captions, when the text tower has prompts).
"""
import numpy as np
import torch

from evaluation import evaluate_similarity
from executors.models.clip_encoding import input_size, preprocess_images
from executors.models.clip_text import tokenize
from executors.models.tuned_model import trainable_names
from training.data import Pairs
from training.losses import symmetric_info_nce

Tensor = torch.Tensor


def r_at_1(text: np.ndarray, videos: np.ndarray, pairs: Pairs) -> float:
    """Text->video R@1 (percent) of normalised caption and video embeddings, as `flow.py eval` scores it."""
    return evaluate_similarity(text @ videos.T, pairs.video)['text_to_video']['R@1']


def _unit(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-6)


class QueryMethod:
    """The query adapter on cached caption embeddings against cached meanP video embeddings."""

    def __init__(self, model: torch.nn.Module, text: np.ndarray, videos: np.ndarray, pairs: Pairs,
                 val_text: np.ndarray, val_videos: np.ndarray, val_pairs: Pairs):
        self.model, self.pairs, self.val_pairs = model, pairs, val_pairs
        self.text, self.videos = torch.from_numpy(text), torch.from_numpy(videos)
        self.val_text, self.val_videos = (torch.from_numpy(val_text) if val_text is not None else None), val_videos

    def parameters(self) -> list[Tensor]:
        return list(self.model.query_adapter.parameters())

    def loss(self, rows: np.ndarray, logit_scale: Tensor) -> Tensor:
        text = _unit(self.model.query_adapter(self.text[rows]))
        video = self.videos[self.pairs.video[rows]]
        return symmetric_info_nce(text, video, torch.from_numpy(self.pairs.batch_positives(rows)), logit_scale)

    @torch.no_grad()
    def validate(self) -> float | None:
        """Validation R@1, or None without a validation set."""
        if self.val_pairs is None:
            return None
        text = _unit(self.model.query_adapter(self.val_text)).numpy()
        return r_at_1(text, self.val_videos, self.val_pairs)


class BackboneMethod:
    """The whole CLIP (frozen but for its installed parts, or all of it: full fine-tuning) per step."""

    def __init__(self, model: torch.nn.Module, frames: list[np.ndarray], pairs: Pairs,
                 val_frames: list[np.ndarray], val_pairs: Pairs, device: str, full: bool = False):
        self.model, self.frames, self.pairs, self.device = model, frames, pairs, device
        self.val_frames, self.val_pairs = val_frames, val_pairs
        names = set(trainable_names(model))
        self.trained = [p for n, p in model.named_parameters() if full or n in names]
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(full or name in names)
        self.text_trained = full or any(not n.startswith('visual.') for n in names)
        self.tokens = tokenize(pairs.sentences, model.context_length)
        self._frozen_text = None
        if not self.text_trained:  # the text tower is frozen: its embeddings are computed once
            with torch.no_grad():
                self._frozen_text = torch.cat([self._encode_text(self.tokens[i:i + 256])
                                               for i in range(0, len(self.tokens), 256)])

    def parameters(self) -> list[Tensor]:
        return self.trained

    def loss(self, rows: np.ndarray, logit_scale: Tensor) -> Tensor:
        self.model.train()
        text = self._encode_text(self.tokens[rows]) if self.text_trained else self._frozen_text[rows]
        video = self._encode_videos([self.frames[j] for j in self.pairs.video[rows]])
        return symmetric_info_nce(text, video, torch.from_numpy(self.pairs.batch_positives(rows)), logit_scale)

    @torch.no_grad()
    def validate(self) -> float | None:
        """Validation R@1, or None without a validation set."""
        if self.val_pairs is None:
            return None
        self.model.eval()
        tokens = tokenize(self.val_pairs.sentences, self.model.context_length)
        text = torch.cat([self._encode_text(tokens[i:i + 256]) for i in range(0, len(tokens), 256)])
        videos = torch.cat([self._encode_videos(self.val_frames[i:i + 8]) for i in range(0, len(self.val_frames), 8)])
        return r_at_1(text.float().cpu().numpy(), videos.float().cpu().numpy(), self.val_pairs)

    def _encode_text(self, tokens: Tensor) -> Tensor:
        length = int(tokens.argmax(dim=-1).max()) + 1  # as clip_encoding.encode_tokens: same result, less work
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.text_trained):
            return _unit(self.model.encode_text(tokens[:, :length].to(self.device)).float())

    def _encode_videos(self, videos: list[np.ndarray]) -> Tensor:
        size = input_size(self.model)
        pixels = torch.cat([preprocess_images(torch.from_numpy(np.array(f)).to(self.device), size) for f in videos])
        frames = _unit(self.model.encode_image(pixels.to(self.model.dtype)).float())
        counts = [len(f) for f in videos]
        return _unit(torch.stack([chunk.mean(dim=0) for chunk in frames.split(counts)]))
