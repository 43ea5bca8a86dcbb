"""`index: ivf` past its exact-search threshold on CLIP-like vectors (bench/clip_like.py): text queries across
the modality gap find the exact top 10 with their exact scores from compact lists, and an index saved with the
older float16 lists is rebuilt once, automatically."""
import json
import logging

import faiss
import numpy as np
import pytest

from bench import clip_like
from executors.storage.ann.base import IndexConfig
from executors.storage.local.durable import file_crc32
from executors.storage.local.vector_store import VectorStore

KEYFRAMES = 20_000
EXACT_BELOW = 5_000  # the inverted file (448 lists) from 5,000 keyframes on, instead of 40,000


@pytest.fixture(scope='module')
def corpus() -> np.ndarray:
    return np.concatenate([vectors for _, vectors in clip_like.corpus(KEYFRAMES)])


def stored(folder, corpus: np.ndarray) -> VectorStore:
    store = VectorStore(folder, clip_like.DIM, IndexConfig('ivf', exact_below=EXACT_BELOW))
    store.append(corpus)
    store.open_index(np.ones(len(corpus), dtype=bool), generation=0)
    return store


def test_text_like_queries_find_the_exact_top_ten_with_exact_scores(tmp_path, corpus):
    store = stored(tmp_path, corpus)
    queries, _ = clip_like.text_queries(60, videos=sum(1 for _ in clip_like.corpus(KEYFRAMES)), seed=7)
    rows = store.read(0, len(corpus))
    hits = []
    for query in queries:
        labels, scores = store.nearest(query, 10)
        exact = rows @ query
        hits.append(len(set(labels.tolist()) & set(np.argsort(-exact)[:10].tolist())))
        np.testing.assert_allclose(scores, exact[labels], rtol=1e-5, atol=1e-6)  # scored from the rows, not codes
        assert (np.diff(scores) <= 0).all()
    assert np.mean(hits) / 10 >= 0.97
    store.save_index(0)
    assert (tmp_path / 'ivf.faiss').stat().st_size < 300 * len(corpus)  # codes (float16 lists took 1,032 B a row)
    store.close()


def test_an_index_saved_with_float16_lists_is_rebuilt_once_with_compact_codes(tmp_path, corpus, caplog):
    store = stored(tmp_path, corpus)
    store.close()
    older = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(clip_like.DIM), clip_like.DIM, 64,
                                          faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    older.by_residual = False
    older.train(corpus[::10])
    older.add_with_ids(corpus, np.arange(len(corpus)))
    faiss.write_index(older, str(tmp_path / 'ivf.faiss'))
    saved = tmp_path / 'ivf.faiss'
    (tmp_path / 'ivf.json').write_text(json.dumps({'size': saved.stat().st_size, 'crc32': file_crc32(saved),
                                                    'generation': 0}))
    with caplog.at_level(logging.INFO):
        store = VectorStore(tmp_path, clip_like.DIM, IndexConfig('ivf', exact_below=EXACT_BELOW))
        assert store.open_index(np.ones(len(corpus), dtype=bool), generation=0)  # changed: to be saved again
    assert 'holds float16 lists' in caplog.text and 'rebuilding it' in caplog.text
    assert store.index.compact and store.index.index.ntotal == len(corpus)
    assert store.nearest(corpus[123], 1)[0].tolist() == [123]
    store.save_index(0)
    store.close()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        store = VectorStore(tmp_path, clip_like.DIM, IndexConfig('ivf', exact_below=EXACT_BELOW))
        assert not store.open_index(np.ones(len(corpus), dtype=bool), generation=0)
    assert 'rebuild' not in caplog.text
    store.close()
