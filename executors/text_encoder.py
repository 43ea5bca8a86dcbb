"""TextEncoder: CLIP embeddings of text queries (/search)."""
from executors.base import Executor, requests
from executors.clip_model import check_quantize, encode_texts, load_clip
from executors.documents import DocList, QueryDoc
from executors.errors import QueryError


class TextEncoder(Executor):
    """Embeds the text of every query that has no embedding yet, `batch_size` texts per forward pass.

    Shares the process's CLIP model with the ImageEncoder (same model, device and quantize).
    Text beyond CLIP's 77 tokens is cut off; an empty query with no image is a QueryError.
    """

    def __init__(self, model: str = 'ViT-B/32', device: str = 'auto', batch_size: int = 64,
                 quantize: str | None = None):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f'batch_size must be a whole number >= 1, not {batch_size!r}')
        check_quantize(quantize, device)
        self.model_name, self.device, self.batch_size, self.quantize = model, device, batch_size, quantize

    @property
    def model(self):
        """Loaded on first use, so /list and /delete never need the weights."""
        return load_clip(self.model_name, self.device, quantize=self.quantize)

    @requests(on=['/search', '/encode'])
    def encode_queries(self, docs: DocList[QueryDoc]) -> DocList[QueryDoc]:
        for query in docs:
            if query.embedding is None and query.image is None and not query.text.strip():
                raise QueryError('empty query: describe what to look for, or search by image')
        pending = [query for query in docs if query.embedding is None and query.text.strip()]
        for start in range(0, len(pending), self.batch_size):
            batch = pending[start:start + self.batch_size]
            for query, embedding in zip(batch, encode_texts(self.model, [q.text for q in batch])):
                query.embedding = embedding
        return docs
