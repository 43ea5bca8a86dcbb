"""ImageEncoder: CLIP embeddings of every keyframe (/index) and of a query image (/search)."""
from executors.base import Executor, requests
from executors.clip_model import check_quantize, encode_images, encode_query_image, load_clip
from executors.documents import DocList, QueryDoc, VideoDoc


class ImageEncoder(Executor):
    """Embeds frames in batches of `batch_size` with the process's shared CLIP model.

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
    def model(self):
        """Loaded on first use, so /list and /delete never need the weights."""
        return load_clip(self.model_name, self.device, quantize=self.quantize)

    @requests(on=['/index', '/encode'])
    def encode_videos(self, docs: DocList[VideoDoc], parameters: dict) -> DocList[VideoDoc]:
        progress = parameters.get('progress')
        for video in docs:
            if video.status == '':
                self.encode_frames(video, progress)
        return docs

    def encode_frames(self, video: VideoDoc, progress=None) -> None:
        """Set every frame's embedding, batch by batch, and drop its pixels."""
        frames, total = video.frames, len(video.frames)
        for start in range(0, total, self.batch_size):
            batch = frames[start:start + self.batch_size]
            for frame, embedding in zip(batch, encode_images(self.model, [f.tensor for f in batch])):
                frame.embedding, frame.tensor = embedding, None
            if progress is not None:
                progress(video, 'encode', start + len(batch), total)

    @requests(on=['/search', '/encode'])
    def encode_queries(self, docs: DocList[QueryDoc]) -> DocList[QueryDoc]:
        for query in docs:
            if query.image is not None and query.embedding is None:
                query.embedding = encode_query_image(self.model, query.image)
        return docs
