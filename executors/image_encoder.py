"""ImageEncoder: CLIP embeddings of every keyframe (/index) and of a query image (/search)."""
import functools


from executors.base import requests
from executors.models.clip_encoding import encode_images, encode_query_image
from executors.models.precision import resolve_precision
from executors.models.clip_model import ClipEncoder, resolve_device
from executors.documents import DocList, QueryDoc, VideoDoc
from executors.media.borders import content_box
from executors.media.heap import release_free_memory
from executors.media.near_duplicates import reuse_sources

__all__ = ['ImageEncoder', 'reuse_sources']


class ImageEncoder(ClipEncoder):
    """Embeds keyframes in batches of `batch_size` with the process's shared CLIP model, and query images.

    reuse_below: a keyframe whose 32 x 32 grey thumbnail differs from the last encoded keyframe's by
    less than this mean absolute difference (0-255 grey levels) takes that keyframe's embedding
    instead of being encoded (static shots, slides, talking heads); 0 encodes every keyframe.
    crop_black_borders: embed the keyframes without the black bars they all share (letterboxing,
    pillarboxing), so a letterboxed copy of a video embeds like the video (executors/media/borders.py).
    precision: 'auto' (bf16 where the device runs it natively: a CPU with AMX or AVX512-BF16, a CUDA
    GPU with bfloat16; else fp32), 'fp32', or 'bf16' (bfloat16 matrix products under autocast, on the
    CPU or a CUDA GPU). `self.precision` is the one chosen, on first use: device 'auto' asks torch
    about CUDA, which /list and /delete never import; the setting itself is checked at once.
    """

    background = True

    def __init__(self, model: str = 'ViT-B/32', device: str = 'auto', batch_size: int = 32,
                 quantize: str | None = None, reuse_below: float = 2.0, precision: str = 'auto',
                 crop_black_borders: bool = True):
        super().__init__(model, device, batch_size, quantize)
        resolve_precision(precision, 'cpu' if device == 'auto' else device, quantize)
        self._precision = precision
        if isinstance(reuse_below, bool) or not isinstance(reuse_below, (int, float)) or not reuse_below >= 0:
            raise ValueError(f'reuse_below must be a number of grey levels >= 0 (0: encode every keyframe), '
                             f'not {reuse_below!r}')
        self.reuse_below = float(reuse_below)
        if not isinstance(crop_black_borders, bool):
            raise ValueError(f'crop_black_borders must be true or false, not {crop_black_borders!r}')
        self.crop_black_borders = crop_black_borders

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
        box = content_box([frames[i].tensor for i in kept]) if self.crop_black_borders else None
        for start in range(0, len(kept), self.batch_size):
            batch = kept[start:start + self.batch_size]
            pixels = [frames[i].tensor if box is None else frames[i].tensor[box] for i in batch]
            for i, embedding in zip(batch, encode_images(self.model, pixels, self.precision)):
                frames[i].embedding, frames[i].tensor = embedding, None
            done = kept[start + self.batch_size] if start + self.batch_size < len(kept) else total
            for i in range(batch[0], done):  # a kept frame's near-duplicates follow it
                frames[i].embedding = frames[sources[i]].embedding
            if progress is not None:
                progress(video, 'encode', done, total)

    @requests(on='/warm')
    def warm(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        """Load the model now: a long-lived process (the page, `serve`) then indexes and answers image queries
        without a first wait, and a missing checkpoint shows at its start (text queries need only the text
        tower's export: executors/models/onnx_text_file.py)."""
        _ = self.model  # loaded once per process, shared with the TextEncoder's CLIP tower
        return docs

    @requests(on=['/search', '/encode'])
    def encode_queries(self, docs: DocList[QueryDoc]) -> DocList[QueryDoc]:
        for query in docs:
            if query.image is not None and query.embedding is None:
                query.embedding = encode_query_image(self.model, query.image)
        return docs

