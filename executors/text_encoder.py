"""TextEncoder: embeddings of text queries (/search, /encode) by CLIP's own text tower or by a
multilingual tower aligned with the same image space, with an LRU cache of query embeddings; and of
each indexed video's cues (/index), so what is said can be searched by meaning."""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np

from executors.base import requests
from executors.models.clip_encoding import TEXT_RUNTIMES, encode_texts
from executors.models.text_batching import QueryBatcher
from executors.models.clip_model import ClipEncoder, load_clip
from executors.models.clip_tokens import tokenize
from executors.models.onnx_text_file import cache_file, features, saved_text_session
from executors.models.tuned_file import is_tuned_file
from executors.documents import CueDoc, DocList, QueryDoc, Status, VideoDoc
from executors.notices import notice_once
from executors.errors import ModelError, QueryError
from executors.models.multilingual import DEFAULT_MODEL, SentenceTextTower
from executors.models.query_language import is_plain_english, query_language
from executors.models.text_tower import TextTower
from executors.vectors import unit_rows

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

TEXT_MODELS = ('clip', 'multilingual', 'auto')  # auto: multilingual for queries that are not plain English


class ClipTextTower(TextTower):
    """CLIP's own text tower (the process's shared CLIP model, its fast text path), in CLIP's image space."""

    kind = 'clip'

    def __init__(self, model: str = 'ViT-B/32', device: str = 'auto', quantize: str | None = None,
                 runtime: str = 'auto'):
        super().__init__(model, model, device, quantize)
        self.runtime = runtime
        self._saved: tuple | None = None  # saved_export(), once decided (() when there is none to use)

    def load(self) -> torch.nn.Module:
        return load_clip(self.name, self.device, quantize=self.quantize)

    def encode(self, texts: list[str]) -> np.ndarray:
        saved = self.saved_export()
        if saved:
            session, context_length = saved
            return unit_rows(features(session, tokenize(texts, context_length)))
        export = cache_file(self.space) if self.runtime != 'torch' else None
        return encode_texts(self.model, texts, runtime=self.runtime, saved_export=export)

    def saved_export(self) -> tuple[object, int] | None:
        """The checked ONNX export of this stock CLIP's text tower and its context length, when the runtime may
        take it: run without torch or the checkpoint (executors/models/onnx_text_file.py). Decided on the first
        query, so a process's queries all take one path; a tuned file, int8 or a GPU take the torch path."""
        if self._saved is None:
            usable = (self.runtime != 'torch' and not self.quantize and self.device in ('auto', 'cpu')
                      and not is_tuned_file(self.name))
            self._saved = (usable and saved_text_session(cache_file(self.space))) or ()
        return self._saved or None

    def exact_in_batches(self) -> bool:
        """On ONNX Runtime, yes (tests/unit/test_text_batching.py); torch's products differ in the last bits."""
        if self.saved_export():
            return True
        from executors.models.text_onnx import onnx_suits  # imports torch

        return self.runtime == 'onnxruntime' or (self.runtime == 'auto' and onnx_suits(self.model))


class QueryCache:
    """The last `size` query embeddings by (tower, text), least recently used dropped first; thread-safe."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> np.ndarray | None:
        with self._lock:
            embedding = self._entries.get(key)
            if embedding is not None:
                self._entries.move_to_end(key)
            return embedding

    def put(self, key: tuple[str, str], embedding: np.ndarray) -> np.ndarray:
        """Keep a read-only copy of `embedding` and return it."""
        embedding = np.array(embedding, dtype=np.float32)
        embedding.flags.writeable = False
        if self.size:
            with self._lock:
                self._entries[key] = embedding
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return embedding

    def __len__(self) -> int:
        return len(self._entries)


class TextEncoder(ClipEncoder):
    """Embeds the text of every query that has no embedding yet, `batch_size` texts per forward pass.

    text_model: 'clip' (CLIP's own text tower: the process's CLIP model, shared with the ImageEncoder),
    'multilingual' (the `multilingual_model` tower, aligned with the image space of the CLIP
    `aligned_to`) or 'auto' (the multilingual tower for queries that are not plain English, by the
    rule in executors/models/query_language.py; CLIP's for English). A tower is loaded on its first query.
    Each query gets `space`, the image space its embedding lives in (executors.models.clip_model.image_space_id),
    which the Indexer checks against the workspace's, and `language`, a best-effort ISO 639-1 tag.
    cache_size: query embeddings kept (by tower and text), so a repeated query costs no model; 0 = none.
    runtime: 'auto' (ONNX Runtime for a stock fp32 CLIP on the CPU when onnx and onnxruntime are
    installed, else torch), 'torch', or 'onnxruntime' (executors/models/text_onnx.py: exported once, kept in
    weights/onnx/; 1.4x faster per query on two idle cores, 1.7x at p50 and 2.6x at p99 on busy ones).
    Text beyond a tower's context (CLIP: 77 tokens, the multilingual: 128) is cut off; an empty query
    with no image is a QueryError.
    cue_embeddings: on /index, embed every cue of each video by the tower a query in its language uses
    (stored with the cue: search by meaning); a tower that cannot load leaves its cues without, said once.
    batch_wait_ms: queries searched at the same time (a server's, the page's) share a forward pass, up to
    batch_size texts, where the runtime gives each the embedding it gets alone (ONNX Runtime; on torch one
    pass each, one at a time: executors/models/text_batching.py); while queries come this close together,
    a pass waits this long for more to join it.
    """

    def __init__(self, model: str = 'ViT-B/32', device: str = 'auto', batch_size: int = 32,
                 quantize: str | None = None, text_model: str = 'auto', multilingual_model: str = DEFAULT_MODEL,
                 aligned_to: str = 'ViT-B/32', cache_size: int = 1024, runtime: str = 'auto',
                 cue_embeddings: bool = True, batch_wait_ms: float = 5.0):
        super().__init__(model, device, batch_size, quantize)
        if runtime not in TEXT_RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(TEXT_RUNTIMES)}, not {runtime!r}")
        if text_model not in TEXT_MODELS:
            raise ValueError(f"text_model must be one of {', '.join(TEXT_MODELS)}, not {text_model!r}")
        if not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f'cache_size must be a whole number >= 0, not {cache_size!r}')
        if not isinstance(batch_wait_ms, (int, float)) or not 0 <= batch_wait_ms <= 1000:
            raise ValueError(f'batch_wait_ms must be a number of milliseconds from 0 to 1000, not {batch_wait_ms!r}')
        self.text_model = text_model
        self.towers = {'clip': ClipTextTower(model, device, quantize, runtime),
                       'multilingual': SentenceTextTower(multilingual_model, aligned_to, device, quantize)}
        self.cache = QueryCache(cache_size)
        self.batchers = {name: QueryBatcher(lambda texts, tower=tower: tower.encode(texts),
                                            batch_size, batch_wait_ms / 1000, tower.exact_in_batches)
                         for name, tower in self.towers.items()}
        self.cue_embeddings = bool(cue_embeddings)
        self._failed: set[str] = set()  # towers that could not load for cues (said once)

    @property
    def model(self) -> torch.nn.Module:
        """The CLIP model of the clip tower (loaded once, then kept)."""
        return self.towers['clip'].model

    @requests(on=['/search', '/encode'])
    def encode_queries(self, docs: DocList[QueryDoc], parameters: dict | None = None) -> DocList[QueryDoc]:
        """Embed each query's text; a search only of what is said or shown in writing (within 'speech' or 'screen') needs none."""
        for query in docs:
            if query.embedding is None and query.image is None and not query.text.strip():
                raise QueryError('empty query: describe what to look for, or search by image')
        parameters = parameters or {}
        if parameters.get('within') in ('speech', 'screen'):
            return docs  # a search of words only needs no embedding (nor a text tower loaded for it)
        pending = [query for query in docs if query.embedding is None and query.text.strip()]
        for tower_name, queries in group_by_tower(pending, self.text_model).items():
            try:
                embed_queries(self.towers[tower_name], queries, self.cache, self.batch_size,
                              encode=self.batchers[tower_name].encode)
            except ModelError as e:
                if tower_name == 'clip' or parameters.get('within') != 'all':
                    raise
                for query in queries:  # what is said is still searched: the Indexer skips the visual part
                    query.language = query.language or query_language(query.text)
                    notice_once(log, f'visual search for queries in {query.language or "this language"} needs the '
                                f'multilingual text model: {e}; showing what is said only')
        return docs


    @requests(on='/index')
    def embed_cues(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        """Give each cue of the videos being indexed its text embedding."""
        if self.cue_embeddings:
            cues = [cue for doc in docs if doc.status == Status.PENDING for cue in doc.cues
                    if cue.embedding is None and cue.text.strip()]
            for tower_name, group in group_cues(cues, self.text_model).items():
                if tower_name not in self._failed:
                    try:
                        embed_texts(self.towers[tower_name], group, self.batch_size)
                    except ModelError as e:
                        self._failed.add(tower_name)
                        log.warning('cues are stored without %s embeddings (no search by meaning for them): %s',
                                    tower_name, e)
        return docs


def group_cues(cues: list[CueDoc], text_model: str) -> dict[str, list[CueDoc]]:
    groups: dict[str, list[CueDoc]] = {}
    for cue in cues:
        groups.setdefault(choose_tower(cue.text, text_model), []).append(cue)
    return groups


def embed_texts(tower, cues: list[CueDoc], batch_size: int) -> None:
    """Set each cue's embedding, `batch_size` texts per forward pass."""
    for start in range(0, len(cues), batch_size):
        batch = cues[start:start + batch_size]
        for cue, embedding in zip(batch, tower.encode([' '.join(c.text.split()) for c in batch])):
            cue.embedding = np.asarray(embedding, dtype=np.float32)


def choose_tower(text: str, text_model: str) -> str:
    """The tower ('clip' or 'multilingual') that embeds `text` under the setting `text_model`."""
    if text_model == 'auto':
        return 'clip' if is_plain_english(text) else 'multilingual'
    return text_model


def group_by_tower(queries: list[QueryDoc], text_model: str) -> dict[str, list[QueryDoc]]:
    groups: dict[str, list[QueryDoc]] = {}
    for query in queries:
        groups.setdefault(choose_tower(query.text, text_model), []).append(query)
    return groups


def embed_queries(tower, queries: list[QueryDoc], cache: QueryCache, batch_size: int, encode=None) -> None:
    """Set each query's embedding (from the cache, else from `encode`, by default `tower`'s, batch_size
    distinct texts per call), its image space and its language."""
    encode = encode or tower.encode
    keys = [(tower.kind, ' '.join(query.text.split())) for query in queries]
    found = {key: cache.get(key) for key in dict.fromkeys(keys)}
    missing = [key for key, embedding in found.items() if embedding is None]
    for start in range(0, len(missing), batch_size):
        batch = missing[start:start + batch_size]
        for key, embedding in zip(batch, encode([text for _, text in batch])):
            found[key] = cache.put(key, embedding)
    space = tower.space
    for query, key in zip(queries, keys):
        query.embedding, query.space = found[key], space
        query.language = query.language or query_language(query.text)
