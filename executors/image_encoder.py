"""ImageEncoder: CLIP embeddings of every keyframe (/index) and of a query image (/search)."""
from executors.base import requests
from executors.clip_encoding import encode_images, encode_query_image
from executors.clip_model import ClipEncoder
from executors.documents import DocList, QueryDoc, VideoDoc


class ImageEncoder(ClipEncoder):
    """Embeds keyframes in batches of `batch_size` with the process's shared CLIP model, and query images."""

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
