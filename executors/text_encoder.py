"""TextEncoder: CLIP embeddings of text queries (/search)."""
from executors.base import requests
from executors.clip_encoding import encode_texts
from executors.clip_model import ClipEncoder
from executors.documents import DocList, QueryDoc
from executors.errors import QueryError


class TextEncoder(ClipEncoder):
    """Embeds the text of every query that has no embedding yet, `batch_size` texts per forward pass.

    Shares the process's CLIP model with the ImageEncoder (same model, device and quantize).
    Text beyond CLIP's 77 tokens is cut off; an empty query with no image is a QueryError.
    """

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
