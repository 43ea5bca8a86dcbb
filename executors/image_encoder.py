"""ImageEncoder: CLIP embeddings of every keyframe (/index) and of a query image (/search)."""
import functools

import numpy as np

from executors.base import requests
from executors.models.clip_encoding import encode_images, encode_query_image
from executors.models.precision import resolve_precision
from executors.models.clip_model import ClipEncoder, resolve_device
from executors.documents import DocList, QueryDoc, VideoDoc
from executors.media.heap import release_free_memory

THUMBNAIL_SIDE = 32  # the near-duplicate test compares 32 x 32 grey thumbnails


class ImageEncoder(ClipEncoder):
    """Embeds keyframes in batches of `batch_size` with the process's shared CLIP model, and query images.

    reuse_below: a keyframe whose 32 x 32 grey thumbnail differs from the last encoded keyframe's by
    less than this mean absolute difference (0-255 grey levels) takes that keyframe's embedding
    instead of being encoded (static shots, slides, talking heads); 0 encodes every keyframe.
    precision: 'auto' (bf16 where the device runs it natively: a CPU with AMX or AVX512-BF16, a CUDA
    GPU with bfloat16; else fp32), 'fp32', or 'bf16' (bfloat16 matrix products under autocast, on the
    CPU or a CUDA GPU). `self.precision` is the one chosen, on first use: device 'auto' asks torch
    about CUDA, which /list and /delete never import; the setting itself is checked at once.
    """

    def __init__(self, model: str = 'ViT-B/32', device: str = 'auto', batch_size: int = 32,
                 quantize: str | None = None, reuse_below: float = 2.0, precision: str = 'auto'):
        super().__init__(model, device, batch_size, quantize)
        resolve_precision(precision, 'cpu' if device == 'auto' else device, quantize)
        self._precision = precision
        if isinstance(reuse_below, bool) or not isinstance(reuse_below, (int, float)) or not reuse_below >= 0:
            raise ValueError(f'reuse_below must be a number of grey levels >= 0 (0: encode every keyframe), '
                             f'not {reuse_below!r}')
        self.reuse_below = float(reuse_below)

    @functools.cached_property
    def precision(self) -> str:
        return resolve_precision(self._precision, resolve_device(self.device), self.quantize)

    @requests(on=['/index', '/encode'])
    def encode_videos(self, docs: DocList[VideoDoc], parameters: dict) -> DocList[VideoDoc]:
        progress = parameters.get('progress')
        for video in docs:
            if video.status == '':
                self.encode_frames(video, progress)
                release_free_memory()  # the piece's pixels are gone; without this the heap keeps their pages
        return docs

    def encode_frames(self, video: VideoDoc, progress=None) -> None:
        """Set every frame's embedding, batch by batch, and drop its pixels (a near-duplicate's at once)."""
        frames, total = video.frames, len(video.frames)
        sources = reuse_sources([frame.tensor for frame in frames], self.reuse_below)
        kept = [i for i, source in enumerate(sources) if source == i]
        for i, frame in enumerate(frames):
            if sources[i] != i:
                frame.tensor = None  # never encoded: its pixels can go now
        for start in range(0, len(kept), self.batch_size):
            batch = kept[start:start + self.batch_size]
            for i, embedding in zip(batch, encode_images(self.model, [frames[i].tensor for i in batch], self.precision)):
                frames[i].embedding, frames[i].tensor = embedding, None
            done = kept[start + self.batch_size] if start + self.batch_size < len(kept) else total
            for i in range(batch[0], done):  # a kept frame's near-duplicates follow it
                frames[i].embedding = frames[sources[i]].embedding
            if progress is not None:
                progress(video, 'encode', done, total)

    @requests(on=['/search', '/encode'])
    def encode_queries(self, docs: DocList[QueryDoc]) -> DocList[QueryDoc]:
        for query in docs:
            if query.image is not None and query.embedding is None:
                query.embedding = encode_query_image(self.model, query.image)
        return docs


def reuse_sources(images: list[np.ndarray], reuse_below: float) -> list[int]:
    """For each image, the index of the image whose embedding it takes: its own, or that of the last
    image kept before it when their thumbnails differ by less than `reuse_below` grey levels (mean
    absolute difference). Comparing with the last kept image, not the previous one, lets a slow
    drift (a pan, a fade) add up until it is encoded again."""
    sources, kept = [], None
    for i, image in enumerate(images):
        if reuse_below > 0:
            thumb = thumbnail(image)
            if kept is not None and float(np.abs(thumb - kept[1]).mean()) < reuse_below:
                sources.append(kept[0])
                continue
            kept = (i, thumb)
        sources.append(i)
    return sources


def thumbnail(image: np.ndarray) -> np.ndarray:
    """A THUMBNAIL_SIDE x THUMBNAIL_SIDE grey float32 picture of an RGB uint8 image: box averages of
    its cells, so sensor noise averages out and a change anywhere in the frame still shows."""
    height, width = image.shape[:2]
    rows = np.linspace(0, height, THUMBNAIL_SIDE + 1).astype(int)
    cols = np.linspace(0, width, THUMBNAIL_SIDE + 1).astype(int)
    if image.ndim == 2:
        image = image[..., None]
    if height < THUMBNAIL_SIDE or width < THUMBNAIL_SIDE:
        picked = image[np.minimum(rows[:-1], height - 1)][:, np.minimum(cols[:-1], width - 1)]
        return picked.mean(axis=2, dtype=np.float32)
    sums = np.add.reduceat(np.add.reduceat(image, rows[:-1], axis=0, dtype=np.uint32), cols[:-1], axis=1).sum(axis=2)
    return sums.astype(np.float32) / (image.shape[2] * np.outer(np.diff(rows), np.diff(cols)))
