"""The Indexer at scale: /search latency, HNSW latency and recall@10 against exact search, segment
agreement, build and open time, memory and disk per keyframe, and re-indexing known files.

Keyframes are synthetic clustered 512-d vectors (ViT-B/32's size): shots of 2 to 15 near-duplicate
frames, each shot around one of a few thousand scene directions (pure Gaussian vectors are unlike
keyframes and defeat any graph index). They are stored as videos of 500 keyframes, with their shot
cuts, through the storage's own add path (float16 rows + SQLite + HNSW); a built workspace is kept
under bench/out/ and reused by later runs (its build time is recorded with it). Queries are new
keyframes of stored shots (an image query of a moment in the library). A fresh process then opens
the workspace and queries it, so its load time and resident memory are what a search command sees.
"""
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Result
from executors.storage import Frames, ImageSpace, VideoRecord

DIM = 512
CENTRES = 4000  # scene directions
SHOT_NOISE, FRAME_NOISE = 0.5, 0.15  # spread of shots around a scene, of frames around their shot
FRAMES_PER_VIDEO = 500
QUERIES = 200
GRAPH = {'M': 16, 'ef_construction': 100, 'ef_search': 256}  # the Indexer's defaults (flow.yml)
CANDIDATES = 64  # the Indexer's default: nearest keyframes whose videos are scored exactly
EF_SWEEP = (128, 256, 512)  # ef_search values whose recall and latency are also reported
QUERY_TEXTS = ['a man rides a bike along the beach', 'a dog catches a frisbee', 'cooking pasta in a kitchen',
               'a crowd cheers at a football match', 'a car drives through the snow at night',
               'two people talk on a sofa', 'a timelapse of clouds over mountains',
               'a child blows out the candles on a birthday cake', 'close-up of hands playing the piano',
               'an aerial view of a city']
SPACE = ImageSpace('b' * 64, 'bench vectors')
OUT = Path(__file__).parent / 'out'
BUILT = 'v2'  # bump when the synthetic data or the workspace format changes (invalidates bench/out caches)


def run(quick: bool = False) -> list[Result]:
    results = []
    for count in [20_000] if quick else [100_000, 1_000_000]:
        if quick:
            with tempfile.TemporaryDirectory() as tmp:
                results += measure(Path(tmp), count, quick)
        else:
            results += measure(OUT / f'indexer-{count}-M{GRAPH["M"]}-efc{GRAPH["ef_construction"]}-{BUILT}',
                               count, quick)
    results += reindex(1000 if quick else 10_000)
    return results


def measure(folder: Path, count: int, quick: bool) -> list[Result]:
    section = f'{count // 1000}k keyframes'
    build_seconds, cached = built(folder, count)
    _prepare_queries(folder, count)
    probe = json.loads(subprocess.run([sys.executable, '-m', 'bench.indexer', '--probe', str(folder)]
                                      + (['--quick'] if quick else []), check=True, capture_output=True,
                                      text=True).stdout)
    workspace = folder / 'workspace'
    disk = {name: os.path.getsize(workspace / name) / count for name in ('embeddings.f16', 'hnsw.bin', 'catalog.sqlite')}
    millions = count / 1e6
    ann = f"M={GRAPH['M']} ef_search={GRAPH['ef_search']}, 1 thread"
    rows = [
        Result(section, 'numpy brute force p50', probe['brute_p50'] * 1e3, 'ms', note='float32 matrix product + top 10'),
        Result(section, 'HNSW top-10 p50', probe['ann_p50'] * 1e3, 'ms', 'numpy brute force p50', ann),
        Result(section, 'HNSW top-10 p99', probe['ann_p99'] * 1e3, 'ms', 'numpy brute force p50'),
        Result(section, 'recall@10 vs exact', probe['recall'], '',
               note=f"{QUERIES} new keyframes of stored shots, ef_search={GRAPH['ef_search']}"),
        *[Result(section, f'ef_search={ef}: recall@10 / p50', probe['sweep'][str(ef)]['recall'], '',
                 note=f"p50 {probe['sweep'][str(ef)]['p50'] * 1e3:.2f} ms") for ef in EF_SWEEP],
        Result(section, 'Indexer /search: top-10 segments as with exact candidates', probe['segment_agreement'], '',
               note=f'segments found from the HNSW candidates vs from the true {CANDIDATES} nearest keyframes'),
        Result(section, 'Indexer /search p50', probe['search_p50'] * 1e3, 'ms', 'numpy brute force p50',
               f'{CANDIDATES} candidates -> exact scores of their videos -> top 10 segments; each query '
               f'in a new process state (its videos read and verified on first use)'),
        Result(section, 'Indexer /search p99', probe['search_p99'] * 1e3, 'ms', 'numpy brute force p50'),
        Result(section, 'Indexer /search p50, videos seen before', probe['warm_p50'] * 1e3, 'ms',
               'Indexer /search p50', 'the same queries again: rows verified and times cached'),
        Result(section, 'Indexer /search p99, videos seen before', probe['warm_p99'] * 1e3, 'ms',
               'Indexer /search p50'),
        Result(section, 'text query p50 (encode + search)', probe['query_p50'] * 1e3, 'ms',
               note=f'{len(QUERY_TEXTS)} sentences, fast-path fp32 ViT-B/32 text encoder + Indexer /search'),
        Result(section, 'text query p99 (encode + search)', probe['query_p99'] * 1e3, 'ms'),
        Result(section, 'build (add videos)', count / build_seconds, 'keyframes/s',
               note=f'{build_seconds:.0f} s, {os.cpu_count()} cores, fsync per video'
                    + (' (built by an earlier run, kept in bench/out)' if cached else '')),
        Result(section, 'open (load saved graph)', probe['open_s'], 's'),
        Result(section, 'resident memory per million', probe['rss_bytes'] / millions / 1e9, 'GB',
               note=f"growth of the search process from before open to after the queries "
                    f"(whole process: {probe['rss_total'] / 1e9:.2f} GB)"),
        Result(section, 'disk: embeddings', disk['embeddings.f16'], 'B/keyframe', note='float16'),
        Result(section, 'disk: HNSW graph', disk['hnsw.bin'], 'B/keyframe', note='derived'),
        Result(section, 'disk: catalog', disk['catalog.sqlite'], 'B/keyframe', note='SQLite'),
    ]
    return rows + ivf_candidate(folder, section)


def built(folder: Path, count: int) -> tuple[float, bool]:
    """Build the workspace unless an earlier run left it complete; (seconds the build took, whether cached)."""
    record = folder / 'build.json'
    if record.exists():
        return json.loads(record.read_text())['seconds'], True
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    seconds = build(folder / 'workspace', count)
    record.write_text(json.dumps({'seconds': seconds, 'count': count, **GRAPH}))
    return seconds, False


def build(folder: Path, count: int) -> float:
    """Add `count` keyframes as videos of FRAMES_PER_VIDEO (with their shot cuts) through the storage; seconds."""
    from executors.hnswlib_storage import HnswlibStorage

    storage = HnswlibStorage(folder, **GRAPH)
    started = time.perf_counter()
    for n, first in enumerate(range(0, count, FRAMES_PER_VIDEO)):
        vectors, lengths = keyframe_vectors(min(FRAMES_PER_VIDEO, count - first), seed=n)
        times = np.arange(len(vectors), dtype=np.float64)
        cuts = np.cumsum(lengths)[:-1].astype(float) - 0.5  # between a shot's last keyframe and the next's first
        record = VideoRecord(f'{n:064x}', f'/videos/{n}.mp4', duration=float(len(vectors)), fps=25.0, width=640,
                             height=360)
        storage.add(record, Frames(times, vectors, [''] * len(vectors)),
                    cuts.tolist(), [], SPACE)
    storage.close()  # saves the graph
    return time.perf_counter() - started


@functools.cache
def _scenes() -> np.ndarray:
    return _unit(np.random.default_rng(0).normal(size=(CENTRES, DIM)))


def keyframe_vectors(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` L2-normalised keyframes in shots of 2 to 15 (the scene directions are shared by all seeds),
    and the shots' lengths."""
    rng = np.random.default_rng(seed + 1)
    lengths = rng.integers(2, 16, count)
    lengths = lengths[np.cumsum(lengths) <= count]
    lengths = np.append(lengths, count - lengths.sum())
    lengths = lengths[lengths > 0]
    shots = _unit(_scenes()[rng.integers(0, CENTRES, len(lengths))]
                  + SHOT_NOISE * rng.normal(size=(len(lengths), DIM)) / np.sqrt(DIM))
    return _unit(np.repeat(shots, lengths, axis=0) + FRAME_NOISE * rng.normal(size=(count, DIM)) / np.sqrt(DIM)), lengths


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def stored_rows(folder: Path) -> np.ndarray:
    return np.memmap(folder / 'workspace' / 'embeddings.f16', dtype=np.float16, mode='r').reshape(-1, DIM)


def _prepare_queries(folder: Path, count: int) -> None:
    """Queries (new keyframes of stored shots) and their exact CANDIDATES nearest, kept with the workspace."""
    if (folder / 'exact.npy').exists():
        return
    stored = stored_rows(folder)
    rng = np.random.default_rng(count)
    picked = stored[np.sort(rng.choice(len(stored), QUERIES, replace=False))].astype(np.float32)
    queries = _unit(picked + FRAME_NOISE * rng.normal(size=picked.shape) / np.sqrt(DIM))
    exact = np.empty((QUERIES, CANDIDATES), dtype=np.int64)
    best = np.full((QUERIES, CANDIDATES), -np.inf, dtype=np.float32)
    for start in range(0, len(stored), 100_000):
        scores = queries @ np.asarray(stored[start:start + 100_000], dtype=np.float32).T
        labels = np.concatenate([exact, np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)], 1)
        merged = np.concatenate([best, scores], 1)
        keep = np.argsort(-merged, axis=1, kind='stable')[:, :CANDIDATES]
        exact, best = np.take_along_axis(labels, keep, 1), np.take_along_axis(merged, keep, 1)
    np.save(folder / 'queries.npy', queries)
    np.save(folder / 'exact.npy', exact)


def probe(folder: Path, quick: bool) -> dict:
    """In a fresh process: open the workspace, query it, report times, recall and resident memory."""
    from executors import search
    from executors.hnswlib_storage import HnswlibStorage

    queries, exact = np.load(folder / 'queries.npy'), np.load(folder / 'exact.npy')
    top10 = [set(e[:10].tolist()) for e in exact]
    rss_before = _rss()
    started = time.perf_counter()
    storage = HnswlibStorage(folder / 'workspace', **GRAPH)
    storage.nearest(queries[0], 1)  # loads the graph
    open_s = time.perf_counter() - started
    vectors = storage.vectors
    ann, found = [], []
    for q in queries:
        started = time.perf_counter()
        labels, _ = vectors.nearest(q, 10)
        ann.append(time.perf_counter() - started)
        found.append(labels)
    grouping = search.Grouping()
    cold, agreement = [], []
    ids = [v.id for v in storage.videos()]
    for q, true in zip(queries, exact):
        started = time.perf_counter()
        segments = search.search_segments(storage, q, count=10, candidates=CANDIDATES, grouping=grouping)
        cold.append(time.perf_counter() - started)
        true_videos = list(dict.fromkeys(ids[label // FRAMES_PER_VIDEO] for label in true))[:10]
        wanted = {(s.video_id, s.start, s.end) for s in search.rank_segments(storage, true_videos, q, count=10,
                                                                              grouping=grouping)}
        agreement.append(len(wanted & {(s.video_id, s.start, s.end) for s in segments}) / len(wanted))
    warm = []
    for q in queries:
        started = time.perf_counter()
        search.search_segments(storage, q, count=10, candidates=CANDIDATES, grouping=grouping)
        warm.append(time.perf_counter() - started)
    sweep = {}
    for ef in EF_SWEEP:
        vectors.graph.set_ef(ef)
        times, found_ef = [], []
        for q in queries:
            started = time.perf_counter()
            found_ef.append(vectors.graph.knn_query(q, k=10, num_threads=1)[0][0])
            times.append(time.perf_counter() - started)
        sweep[str(ef)] = {'recall': _recall(found_ef, top10), 'p50': float(np.median(times))}
    vectors.graph.set_ef(GRAPH['ef_search'])
    rss_after = _rss()
    brute = _brute_force_seconds(folder, queries[:20])
    query_times = [0.0] if quick else text_query_times(storage, folder)
    return {'sweep': sweep, 'segment_agreement': float(np.mean(agreement)), 'rss_bytes': rss_after - rss_before,
            'rss_total': rss_after, 'query_p50': float(np.median(query_times)),
            'query_p99': float(np.percentile(query_times, 99)), 'open_s': open_s, 'brute_p50': brute,
            'ann_p50': float(np.median(ann)), 'ann_p99': float(np.percentile(ann, 99)),
            'search_p50': float(np.median(cold)), 'search_p99': float(np.percentile(cold, 99)),
            'warm_p50': float(np.median(warm)), 'warm_p99': float(np.percentile(warm, 99)),
            'recall': _recall(found, top10)}


def _recall(found: list, top10: list[set]) -> float:
    return float(np.mean([len(set(np.asarray(f).tolist()) & e) / 10 for f, e in zip(found, top10)]))


def _brute_force_seconds(folder: Path, queries: np.ndarray) -> float:
    """numpy's median single-query time over every stored keyframe held as float32 (after the other timings:
    the matrix would count in the resident memory)."""
    stored = stored_rows(folder)
    matrix = np.empty(stored.shape, dtype=np.float32)
    for start in range(0, len(stored), 100_000):
        matrix[start:start + 100_000] = stored[start:start + 100_000]
    times = []
    for q in queries:
        started = time.perf_counter()
        np.argpartition(-(matrix @ q), 10)[:10]
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def text_query_times(storage, folder: Path) -> list[float]:
    """Seconds per sentence from text to ranked segments: the text encoder, then the Indexer's search."""
    from executors import search
    from executors.clip_encoding import encode_texts
    from executors.clip_model import load_clip
    from tests.factories import write_random_clip_checkpoint

    checkpoint = write_random_clip_checkpoint(folder / 'clip-random.pt', 'ViT-B/32')
    model = load_clip(str(checkpoint), 'cpu')
    encode_texts(model, ['warm up'])
    times = []
    for text in QUERY_TEXTS * 4:
        started = time.perf_counter()
        query = encode_texts(model, [text])[0]
        search.search_segments(storage, query, count=10, candidates=CANDIDATES, grouping=search.Grouping())
        times.append(time.perf_counter() - started)
    return times


def ivf_candidate(folder: Path, section: str) -> list[Result]:
    """Side by side with HNSW: faiss's IVF over the same float16 rows (scores exact in float16), another process."""
    try:
        import faiss  # noqa: F401 - not a requirement: measured where installed
    except ImportError:
        return []
    ivf = json.loads(subprocess.run([sys.executable, '-m', 'bench.indexer', '--ivf', str(folder)], check=True,
                                    capture_output=True, text=True).stdout)
    name = f"candidate: faiss IVF{ivf['nlist']},SQfp16 nprobe={ivf['nprobe']}"
    return [
        Result(section, f'{name}, recall@10', ivf['recall'], '', 'recall@10 vs exact',
               f"build (train + add) {ivf['build_s']:.0f} s on {os.cpu_count()} cores; not adopted yet"),
        Result(section, f'{name}, top-10 p50', ivf['p50'] * 1e3, 'ms', 'HNSW top-10 p50', '1 thread'),
        Result(section, f'{name}, resident memory per million', ivf['rss_per_million'] / 1e9, 'GB',
               'resident memory per million', 'growth while training and filling it'),
    ]


def ivf_probe(folder: Path) -> dict:
    """Train and fill a faiss IVF index from the stored rows; its recall@10, p50 and resident growth."""
    import faiss

    queries, exact = np.load(folder / 'queries.npy'), np.load(folder / 'exact.npy')
    stored = stored_rows(folder)
    count = len(stored)
    nlist = 4 * int(np.sqrt(count)) // 64 * 64  # faiss's usual 4 * sqrt(N) lists
    rss_before = _rss()
    started = time.perf_counter()
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(DIM), DIM, nlist, faiss.ScalarQuantizer.QT_fp16,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    sample = np.random.default_rng(0).choice(count, min(count, 32 * nlist), replace=False)
    index.train(np.asarray(stored[np.sort(sample)], dtype=np.float32))
    for start in range(0, count, 100_000):
        index.add(np.asarray(stored[start:start + 100_000], dtype=np.float32))
    build_s = time.perf_counter() - started
    rss_after = _rss()
    faiss.omp_set_num_threads(1)
    index.nprobe = 8
    times, found = [], []
    for q in queries:
        started = time.perf_counter()
        found.append(index.search(q[None], 10)[1][0])
        times.append(time.perf_counter() - started)
    return {'nlist': nlist, 'nprobe': index.nprobe, 'build_s': build_s, 'p50': float(np.median(times)),
            'recall': _recall(found, [set(e[:10].tolist()) for e in exact]),
            'rss_per_million': (rss_after - rss_before) / (count / 1e6)}


def reindex(files: int) -> list[Result]:
    """`index` again over `files` already indexed small files: Library.index end to end (a tiny checkpoint).
    The files and their workspace are kept under bench/out/ (storing 10,000 videos one by one takes minutes)."""
    from library import Library

    section = f're-index {files // 1000}k known files'
    folder = OUT / f'reindex-{files}-{BUILT}'
    paths = _known_files(folder, files)
    started = time.perf_counter()
    library = Library(Path(__file__).parent.parent / 'flow.yml', workspace=str(folder / 'workspace'),
                      model=str(folder / 'tiny.pt'))
    open_s = time.perf_counter() - started
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        statuses = [video.status for video in library.index(paths)]
        runs.append(time.perf_counter() - started)
    library.close()
    skipped = sum(s == 'already indexed' for s in statuses)
    return [Result(section, 'Library.index, every file already indexed', float(np.median(runs)), 's',
                   note=f'{skipped} of {files} reported already indexed (path, size and mtime match: none '
                        f'hashed); median of 3'),
            Result(section, 'Library(...) start-up before it', open_s, 's', note='flow.yml, tiny CLIP checkpoint')]


def _known_files(folder: Path, files: int) -> list[str]:
    """`files` small distinct files, each stored as a one-keyframe video through the storage directly."""
    from executors.clip_model import image_space_id
    from executors.hnswlib_storage import HnswlibStorage
    from tests.factories import write_random_clip_checkpoint

    videos = folder / 'videos'
    paths = [str(videos / f'{i:05d}.mp4') for i in range(files)]
    if (folder / 'done').exists():
        return paths
    shutil.rmtree(folder, ignore_errors=True)
    videos.mkdir(parents=True)
    checkpoint = write_random_clip_checkpoint(folder / 'tiny.pt')
    storage = HnswlibStorage(folder / 'workspace')
    space = ImageSpace(image_space_id(str(checkpoint)), str(checkpoint))
    rng = np.random.default_rng(0)
    for i, path in enumerate(map(Path, paths)):
        content = i.to_bytes(4, 'little') * 64
        path.write_bytes(content)
        status = path.stat()
        record = VideoRecord(hashlib.sha256(content).hexdigest(), str(path), 1.0, 1.0, 64, 48, size=status.st_size,
                             mtime_ns=status.st_mtime_ns)
        storage.add(record, Frames(np.zeros(1), _unit(rng.normal(size=(1, 32))), ['']), [], [], space)
    storage.close()
    (folder / 'done').touch()
    return paths


def _rss() -> int:
    with open('/proc/self/status') as status:
        return int(next(line for line in status if line.startswith('VmRSS')).split()[1]) * 1024


if __name__ == '__main__':
    if sys.argv[1:2] == ['--probe']:
        print(json.dumps(probe(Path(sys.argv[2]), quick='--quick' in sys.argv)))
    elif sys.argv[1:2] == ['--ivf']:
        print(json.dumps(ivf_probe(Path(sys.argv[2]))))
    elif sys.argv[1:2] == ['--build']:
        print(built(Path(sys.argv[2]), int(sys.argv[3])))
