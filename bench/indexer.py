"""The Indexer at scale: HNSW search latency and recall@10 against exact search, build and open time,
memory and disk per keyframe, on synthetic clustered 512-d keyframe vectors (ViT-B/32's size).

Keyframes come in shots of 2 to 15 near-duplicate frames; each shot lies around one of a few
thousand scene directions (pure Gaussian vectors are unlike keyframes and defeat any graph index).
They are stored as videos of 500 keyframes through the Indexer's own add path (float16 rows +
SQLite + HNSW). Queries are new keyframes of stored shots (an image query of a moment in the library). A
fresh process then opens the workspace and queries it, so its load time and resident memory are
what a user's search command sees.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Result, markdown_table
from executors.documents import DocList, FrameDoc, VideoDoc
from executors.workspace import Workspace
from tests.factories import write_random_clip_checkpoint

DIM = 512
CENTRES = 4000  # scene directions
SHOT_NOISE, FRAME_NOISE = 0.5, 0.15  # spread of shots around a scene, of frames around their shot
FRAMES_PER_VIDEO = 500
QUERIES = 200
GRAPH = {'M': 16, 'ef_construction': 100, 'ef_search': 256}  # the Indexer's defaults
QUERY_TEXTS = ['a man rides a bike along the beach', 'a dog catches a frisbee', 'cooking pasta in a kitchen',
               'a crowd cheers at a football match', 'a car drives through the snow at night',
               'two people talk on a sofa', 'a timelapse of clouds over mountains',
               'a child blows out the candles on a birthday cake', 'close-up of hands playing the piano',
               'an aerial view of a city']
EF_SWEEP = (64, 128, 256, 512)
CANDIDATES = 64  # the Indexer's default: nearest keyframes whose videos are scored exactly  # ef_search values whose recall and latency are also reported


def run(quick: bool = False) -> list[Result]:
    results = []
    for count in [20_000] if quick else [100_000, 1_000_000]:
        with tempfile.TemporaryDirectory() as tmp:
            results += measure(Path(tmp), count)
    return results


def measure(folder: Path, count: int) -> list[Result]:
    section = f'{count // 1000}k keyframes'
    build_seconds = build(folder / 'workspace', count)
    stored = np.memmap(folder / 'workspace' / 'embeddings.f16', dtype=np.float16, mode='r').reshape(-1, DIM)
    rng = np.random.default_rng(count)  # another keyframe of a stored shot
    picked = stored[np.sort(rng.choice(len(stored), QUERIES, replace=False))].astype(np.float32)
    queries = _unit(picked + FRAME_NOISE * rng.normal(size=picked.shape) / np.sqrt(DIM))
    np.save(folder / 'queries.npy', queries)
    exact, brute_p50 = exact_search(stored, queries)
    np.save(folder / 'exact.npy', exact[:, :10])
    np.save(folder / 'exact_candidates.npy', exact)
    write_random_clip_checkpoint(folder / 'clip-random.pt', 'ViT-B/32')
    probe = json.loads(subprocess.run([sys.executable, '-m', 'bench.indexer', '--probe', str(folder)], check=True,
                                      capture_output=True, text=True).stdout)
    disk = {name: os.path.getsize(folder / 'workspace' / name) / count
            for name in ('embeddings.f16', 'hnsw.bin', 'catalog.sqlite')}
    millions = count / 1e6
    return [
        Result(section, 'numpy brute force p50', brute_p50 * 1e3, 'ms', note='float32 matrix product + top 10'),
        Result(section, 'HNSW top-10 p50', probe['ann_p50'] * 1e3, 'ms', 'numpy brute force p50',
               f"M={GRAPH['M']} ef_search={GRAPH['ef_search']}, 1 thread"),
        Result(section, 'HNSW top-10 p99', probe['ann_p99'] * 1e3, 'ms', 'numpy brute force p50'),
        Result(section, 'recall@10 vs exact', probe['recall'], '',
               note=f"{QUERIES} new keyframes of stored shots, ef_search={GRAPH['ef_search']}"),
        *[Result(section, f'ef_search={ef}: recall@10 / p50', probe['sweep'][str(ef)]['recall'], '',
                 note=f"p50 {probe['sweep'][str(ef)]['p50'] * 1e3:.2f} ms") for ef in EF_SWEEP],
        Result(section, 'Indexer /search: top-10 segments as with exact candidates', probe['segment_recall'], '',
               note=f'the segments found from HNSW candidates vs from the true {CANDIDATES} nearest keyframes'),
        Result(section, 'Indexer /search p50', probe['search_p50'] * 1e3, 'ms', 'numpy brute force p50',
               '64 candidates -> exact scores of their videos -> top 10 segments'),
        Result(section, 'Indexer /search p99', probe['search_p99'] * 1e3, 'ms', 'numpy brute force p50'),
        Result(section, 'text query p50 (encode + search)', probe['query_p50'] * 1e3, 'ms',
               note=f'{len(QUERY_TEXTS)} sentences, fast-path fp32 ViT-B/32 text encoder + Indexer /search'),
        Result(section, 'text query p99 (encode + search)', probe['query_p99'] * 1e3, 'ms'),
        Result(section, 'build (add videos)', count / build_seconds, 'keyframes/s',
               note=f'{build_seconds:.0f} s, {os.cpu_count()} cores, fsync per video'),
        Result(section, 'open (load saved graph)', probe['open_s'], 's'),
        Result(section, 'resident memory per million', probe['rss_bytes'] / millions / 1e9, 'GB',
               note=f"growth of the search process from before open to after the queries "
                    f"(whole process: {probe['rss_total'] / 1e9:.2f} GB)"),
        Result(section, 'disk: embeddings', disk['embeddings.f16'], 'B/keyframe', note='float16'),
        Result(section, 'disk: HNSW graph', disk['hnsw.bin'], 'B/keyframe', note='derived'),
        Result(section, 'disk: catalog', disk['catalog.sqlite'], 'B/keyframe', note='SQLite'),
    ]


def build(folder: Path, count: int) -> float:
    """Add `count` keyframes as videos of FRAMES_PER_VIDEO through Workspace.add; seconds taken."""
    workspace = Workspace(folder, **GRAPH)
    started = time.perf_counter()
    for n, first in enumerate(range(0, count, FRAMES_PER_VIDEO)):
        embeddings = keyframe_vectors(min(FRAMES_PER_VIDEO, count - first), seed=n)
        frames = DocList[FrameDoc]([FrameDoc(timestamp=float(i), thumbnail=f'thumbnails/{n}/{i}.jpg', embedding=e)
                                    for i, e in enumerate(embeddings)])
        workspace.add(VideoDoc(uri=f'/videos/{n}.mp4', video_id=f'{n:064x}', duration=float(len(frames)), fps=25.0,
                               width=640, height=360, frames=frames))
    workspace.close()  # saves the graph
    return time.perf_counter() - started


def keyframe_vectors(count: int, seed: int) -> np.ndarray:
    """`count` L2-normalised keyframes in shots of 2 to 15 (the scene directions are shared by all seeds)."""
    scenes = _unit(np.random.default_rng(0).normal(size=(CENTRES, DIM)))
    rng = np.random.default_rng(seed + 1)
    lengths = rng.integers(2, 16, count)
    lengths = lengths[np.cumsum(lengths) <= count]
    lengths = np.append(lengths, count - lengths.sum())
    shots = _unit(scenes[rng.integers(0, CENTRES, len(lengths))] + SHOT_NOISE * rng.normal(size=(len(lengths), DIM))
                  / np.sqrt(DIM))
    return _unit(np.repeat(shots, lengths, axis=0) + FRAME_NOISE * rng.normal(size=(count, DIM)) / np.sqrt(DIM))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def exact_search(stored: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, float]:
    """The true CANDIDATES nearest of each query, best first, and numpy's median single-query brute-force time."""
    matrix = np.empty(stored.shape, dtype=np.float32)
    for start in range(0, len(stored), 100_000):
        matrix[start:start + 100_000] = stored[start:start + 100_000]
    exact = np.stack([np.argsort(-(matrix @ q))[:CANDIDATES] for q in queries])
    times = []
    for q in queries[:20]:
        started = time.perf_counter()
        scores = matrix @ q
        np.argpartition(-scores, 10)[:10]
        times.append(time.perf_counter() - started)
    return exact, float(np.median(times))


def probe(folder: Path) -> dict:
    """In a fresh process: open the workspace, query it, report times, recall and resident memory."""
    from executors.indexer import search_segments, segments_of_candidates

    queries, exact = np.load(folder / 'queries.npy'), np.load(folder / 'exact.npy')
    rss_before = _rss()
    started = time.perf_counter()
    workspace = Workspace(folder / 'workspace', **GRAPH)
    vectors = workspace.graph()
    open_s = time.perf_counter() - started
    ann, found = [], []
    for q in queries:
        started = time.perf_counter()
        labels, _ = vectors.nearest(q, 10)
        ann.append(time.perf_counter() - started)
        found.append(labels)
    full, segment_recall = [], []
    grouping = {'top': 10, 'margin': 0.02, 'max_segment': 30.0, 'snap': 2.0}
    for q, true_candidates in zip(queries, np.load(folder / 'exact_candidates.npy')):
        started = time.perf_counter()
        found_segments = search_segments(workspace, q, candidates=CANDIDATES, **grouping)
        full.append(time.perf_counter() - started)
        exact_segments = segments_of_candidates(workspace, true_candidates, q, **grouping)
        key = {(s.video_id, s.start, s.end) for s in exact_segments}
        segment_recall.append(len(key & {(s.video_id, s.start, s.end) for s in found_segments}) / len(key))
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
    sweep = {}
    for ef in EF_SWEEP:
        vectors.graph.set_ef(ef)
        times, found_ef = [], []
        for q in queries:
            started = time.perf_counter()
            found_ef.append(vectors.graph.knn_query(q, k=10, num_threads=1)[0][0])
            times.append(time.perf_counter() - started)
        sweep[str(ef)] = {'recall': float(np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found_ef, exact)])),
                          'p50': float(np.median(times))}
    rss_after = _rss()
    query_times = text_query_times(workspace, folder / 'clip-random.pt')
    return {'sweep': sweep, 'segment_recall': float(np.mean(segment_recall)), 'rss_bytes': rss_after - rss_before, 'rss_total': rss_after,
            'query_p50': float(np.median(query_times)), 'query_p99': float(np.percentile(query_times, 99)),
            'open_s': open_s, 'ann_p50': float(np.median(ann)), 'ann_p99': float(np.percentile(ann, 99)),
            'search_p50': float(np.median(full)), 'search_p99': float(np.percentile(full, 99)),
            'recall': float(recall)}


def text_query_times(workspace: Workspace, checkpoint: Path) -> list[float]:
    """Seconds per sentence from text to ranked segments: the text encoder, then the Indexer's search."""
    from executors.clip_encoding import encode_texts
    from executors.clip_model import load_clip
    from executors.indexer import search_segments

    model = load_clip(str(checkpoint), 'cpu')
    encode_texts(model, ['warm up'])
    times = []
    for text in QUERY_TEXTS * 4:
        started = time.perf_counter()
        query = encode_texts(model, [text])[0]
        search_segments(workspace, query, top=10, candidates=64, margin=0.02, max_segment=30.0, snap=2.0)
        times.append(time.perf_counter() - started)
    return times


def _rss() -> int:
    with open('/proc/self/status') as status:
        return int(next(line for line in status if line.startswith('VmRSS')).split()[1]) * 1024


if __name__ == '__main__':
    if sys.argv[1:2] == ['--probe']:
        print(json.dumps(probe(Path(sys.argv[2]))))
    else:
        print(markdown_table(run(quick='--quick' in sys.argv)))
