"""The text towers' shared shape: a model loaded on its first query, and the image space it maps into."""
from __future__ import annotations
from typing import TYPE_CHECKING

import numpy as np

from executors.models.clip_model import image_space_id

if TYPE_CHECKING:
    import torch


class TextTower:
    """A text encoder loaded on first use. `space` is the identity of the image space its embeddings
    live in (executors.models.clip_model.image_space_id of `aligned_to`); subclasses load and encode."""

    kind = ''

    def __init__(self, name: str, aligned_to: str, device: str = 'auto', quantize: str | None = None):
        self.name, self.aligned_to, self.device, self.quantize = name, aligned_to, device, quantize
        self._model: torch.nn.Module | None = None
        self._space = ''

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def model(self) -> torch.nn.Module:
        if self._model is None:
            self._model = self.load()
        return self._model

    @property
    def space(self) -> str:
        if not self._space:
            self._space = image_space_id(self.aligned_to)
        return self._space

    def load(self) -> torch.nn.Module:
        raise NotImplementedError

    def encode(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError

    def exact_in_batches(self) -> bool:
        """Whether a text's embedding is the same, bit for bit, in a batch with other texts as alone."""
        return False
