"""The workspace's nearest-neighbour index on CLIP-like vectors (bench/clip_like.py, each assumption documented
there): recall@10 against exact search and p50 single-thread latency of VectorStore.nearest, for text-like
queries (across the modality gap) and image-like ones (a new frame of a stored video), at 100k, 300k and 1M
keyframes (`--quick`: 20k, with the IVF layout from 5k on), for `index: ivf` (faiss: 4-bit fast-scan codes in
~4*sqrt(N) lists, the best 500 rescored from the float16 rows) over an nprobe sweep and `index: hnsw` (hnswlib)
over an ef_search sweep. Memory per keyframe = the index file + the 1024 B float16 row.

The 1M vectors are generated once into bench/out/clip-like-1000000.f16 (smaller sizes are its first rows,
whole videos and topics alike); each size's rows file, queries, exact top-10 and built indexes are kept
in bench/out/ann-N/ and reused. The measured statistics of the vectors are reported first.
"""
import os
import statistics
import time
from pathlib import Path

import numpy as np

from bench import clip_like
from bench.common import Result
from executors.storage.ann import ivf
from executors.storage.ann.base import IndexConfig
from executors.storage.local.vector_store import VectorStore

OUT = Path(__file__).resolve().parent / 'out'
CORPUS = 1_000_000
QUERIES = 200
SWEEP = {'ivf': ('nprobe', (96, 48, 64, 128)), 'hnsw': ('ef_search', (256, 128, 512))}  # the default first


def run(quick: bool = False) -> list[Result]:
    results = []
    for count in [20_000] if quick else [100_000, 300_000, 1_000_000]:
        folder = OUT / f'ann-{count}'
        rows, queries = prepared(folder, count, quick)
        section = f'ANN on CLIP-like vectors, {count // 1000}k keyframes'
        results += statistics_rows(section, rows, queries)
        for kind in ('ivf', 'hnsw'):
            results += measure(section, folder, kind, count, queries, quick)
    return results


def prepared(folder: Path, count: int, quick: bool) -> tuple[np.ndarray, dict]:
    """The first `count` rows of the CLIP-like corpus as a workspace rows file, and the queries with their
    exact top 10 (built once)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows_path = folder / 'embeddings.f16'
    if not rows_path.exists():
        source = OUT / ('clip-like-quick.f16' if quick else f'clip-like-{CORPUS}.f16')
        if not source.exists():
            generate(source, count if quick else CORPUS)
        corpus = np.load(source, mmap_mode='r')
        partial = rows_path.with_suffix('.tmp')
        corpus[:count].tofile(partial)
        partial.rename(rows_path)
    rows = np.memmap(rows_path, dtype=np.float16, mode='r').reshape(-1, clip_like.DIM)
    if not (folder / 'queries.npz').exists():
        videos = sum(1 for _ in clip_like.corpus(count))
        text, targets = clip_like.text_queries(QUERIES, videos, seed=1)
        image = clip_like.image_queries(QUERIES, videos, seed=2)
        np.savez(folder / 'queries.npz', text=text, image=image, text_exact=exact_top10(rows, text),
                 image_exact=exact_top10(rows, image), targets=np.array(targets))
    return rows, dict(np.load(folder / 'queries.npz'))


def generate(path: Path, count: int) -> None:
    partial = path.with_suffix('.tmp')
    rows = np.lib.format.open_memmap(partial, mode='w+', dtype=np.float16, shape=(count, clip_like.DIM))
    for first, vectors in clip_like.corpus(count):
        rows[first:first + len(vectors)] = vectors
    rows.flush()
    del rows
    partial.rename(path)


def exact_top10(rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    best = np.empty((len(queries), 0), np.int64)
    scores = np.empty((len(queries), 0), np.float32)
    for start in range(0, len(rows), 100_000):
        part = queries @ np.asarray(rows[start:start + 100_000], np.float32).T
        labels = np.concatenate([best, np.broadcast_to(np.arange(start, start + part.shape[1]), part.shape)], 1)
        merged = np.concatenate([scores, part], 1)
        keep = np.argsort(-merged, axis=1, kind='stable')[:, :10]
        best, scores = np.take_along_axis(labels, keep, 1), np.take_along_axis(merged, keep, 1)
    return best


def statistics_rows(section: str, rows: np.ndarray, queries: dict) -> list[Result]:
    rng = np.random.default_rng(0)
    sample = np.asarray(rows[np.sort(rng.choice(len(rows), 2000, replace=False))], np.float32)
    pairwise = sample @ sample.T
    text = queries['text']
    nearest = np.asarray([rows[label] for label in queries['text_exact'][:, 0]], np.float32)
    return [Result(section, 'data: mean pairwise cosine of keyframes', float((pairwise.sum() - len(sample)) /
                                                                              (len(sample) * (len(sample) - 1))), '',
                   note='CLIP ViT-B/32 images: ~0.5'),
            Result(section, 'data: text query to random keyframe cosine', float(np.mean(text @ sample.T)), '',
                   note='CLIP: ~0.15'),
            Result(section, 'data: text query to its nearest keyframe cosine',
                   float(np.mean(np.sum(text * nearest, axis=1))), '', note='CLIP: ~0.3 for a matching frame')]


def measure(section: str, folder: Path, kind: str, count: int, queries: dict, quick: bool) -> list[Result]:
    config = IndexConfig(kind, exact_below=5_000 if quick else IndexConfig().exact_below)
    store = VectorStore(folder, clip_like.DIM, config)
    started = time.perf_counter()
    rebuilt = store.open_index(np.ones(count, dtype=bool), generation=0)
    opened = time.perf_counter() - started
    if rebuilt:
        store.save_index(0)
    knob, values = SWEEP[kind]
    target = store.index.index if kind == 'ivf' else store.index
    results = [Result(section, f'{kind}: {"build" if rebuilt else "load"}', opened, 's',
                      note=_layout(store) + ('' if rebuilt else ' (built by an earlier run)'))]
    for name in ('text', 'image'):  # untimed: pages in the rows they rescore, as earlier searches of a workspace do
        _timed(store, queries[name], queries[f'{name}_exact'])
    for value in values[:1] if quick else values:
        setattr(target, knob, value)
        for name in ('text', 'image'):
            recall, p50 = _timed(store, queries[name], queries[f'{name}_exact'])
            results.append(Result(section, f'{kind} {knob}={value}: {name}-like recall@10', recall, '',
                                  note=f'p50 {p50 * 1e3:.2f} ms, 1 thread, load {os.getloadavg()[0]:.1f}'))
    results.append(Result(section, f'{kind}: index file', (folder / config.file_name()).stat().st_size / count, 'B/keyframe',
                          note='plus 1024 B/keyframe of float16 rows'))
    store.close()
    return results


def _timed(store: VectorStore, queries: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    times, recalls = [], []
    for query, true in zip(queries, exact):
        started = time.perf_counter()
        labels, _ = store.nearest(query, 10)
        times.append(time.perf_counter() - started)
        recalls.append(len(set(labels.tolist()) & set(true.tolist())) / 10)
    return float(np.mean(recalls)), statistics.median(times)


def _layout(store: VectorStore) -> str:
    if hasattr(store.index, 'graph'):
        return 'hnswlib graph, M 16, ef_construction 100'
    return f'{store.index.index.nlist} lists of 4-bit codes, {ivf.RESCORED} rescored'

