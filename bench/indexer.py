"""The Indexer at scale: /search latency, the workspace index's latency and recall@10 against exact
search (the configured default, IVF, with hnswlib's graph side by side), segment agreement, build and
open time, memory and disk per keyframe, and re-indexing known files.

Keyframes are synthetic clustered 512-d vectors (ViT-B/32's size): shots of 2 to 15 near-duplicate
frames, each shot around one of a few thousand scene directions (pure Gaussian vectors are unlike
keyframes and defeat any graph index). They are stored as videos of 500 keyframes, with their shot
cuts, through the storage's own add path (float16 rows + SQLite + index); a built workspace is kept
under bench/out/ and reused by later runs (its build time is recorded with it). Queries are new
keyframes of stored shots (an image query of a moment in the library). A fresh process then opens
the workspace and queries it, so its load time and resident memory are what a search command sees;
another fresh process does the same through the hnswlib graph (`index: hnsw`) for comparison.
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
from executors.storage.ann.base import IndexConfig
from executors.storage.interface import Frames, ImageSpace, VideoRecord

DIM = 512
CENTRES = 4000  # scene directions
SHOT_NOISE, FRAME_NOISE = 0.5, 0.15  # spread of shots around a scene, of frames around their shot
FRAMES_PER_VIDEO = 500
QUERIES = 200
DEFAULT = IndexConfig()  # the Indexer's index and knobs (flow.yml)
GRAPH = {'M': 16, 'ef_construction': 100, 'ef_search': 256}  # the comparison: hnswlib at the Indexer's settings
CANDIDATES = 64  # the Indexer's default: nearest keyframes whose videos are scored exactly
SWEEP = {'ivf': ('nprobe', (8, 16, 32, 64)), 'hnsw': ('ef_search', (256, 512))}  # also reported: recall and p50
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
            results += measure(OUT / f'indexer-{count}-{BUILT}', count, quick)
    results += reindex(1000 if quick else 10_000)
    return results


def measure(folder: Path, count: int, quick: bool) -> list[Result]:
    section = f'{count // 1000}k keyframes'
    build_seconds, built_with, cached = built(folder, count)
    index_seconds = index_built(folder)
    _prepare_queries(folder, count)
    probe = _probe(folder, DEFAULT.kind, quick)
    workspace = folder / 'workspace'
    disk = {name: os.path.getsize(workspace / name) / count
            for name in ('embeddings.f16', DEFAULT.file_name(), 'catalog.sqlite')}
    millions = count / 1e6
    ann = f'IVF nprobe={DEFAULT.nprobe}' if DEFAULT.kind == 'ivf' else f"HNSW ef_search={DEFAULT.ef_search}"
    knob, values = SWEEP[DEFAULT.kind]
    rows = [
        Result(section, 'numpy brute force p50', probe['brute_p50'] * 1e3, 'ms', note='float32 matrix product + top 10'),
        Result(section, f'{ann} top-10 p50', probe['ann_p50'] * 1e3, 'ms', 'numpy brute force p50',
               f"the workspace's index (flow.yml's default), {probe['layout']}, 1 thread"),
        Result(section, f'{ann} top-10 p99', probe['ann_p99'] * 1e3, 'ms', 'numpy brute force p50'),
        Result(section, 'recall@10 vs exact', probe['recall'], '', note=f'{QUERIES} new keyframes of stored shots'),
        *[Result(section, f'{knob}={v}: recall@10 / p50', probe['sweep'][str(v)]['recall'], '',
                 note=f"p50 {probe['sweep'][str(v)]['p50'] * 1e3:.2f} ms") for v in values],
        *[Result(section, f'{knob}={v}: recall@10, queries far from every keyframe', probe['far'][str(v)]['recall'], '',
                 note=f'{QUERIES} random directions (as far as a sentence from image embeddings): near-ties everywhere')
          for v in values],
        Result(section, 'Indexer /search: top-10 segments as with exact candidates', probe['segment_agreement'], '',
               note=f'segments found from the index\'s candidates vs from the true {CANDIDATES} nearest keyframes'),
        Result(section, 'Indexer /search p50', probe['search_p50'] * 1e3, 'ms', 'numpy brute force p50',
               f'{CANDIDATES} candidates -> exact scores of their videos -> top 10 segments; each query '
               f'in a new process state (its videos read and verified on first use)'),
        Result(section, 'Indexer /search p99', probe['search_p99'] * 1e3, 'ms', 'numpy brute force p50'),
        Result(section, 'Indexer /search p50, videos seen before', probe['warm_p50'] * 1e3, 'ms',
               'Indexer /search p50', 'the same queries again: rows verified and times cached'),
        Result(section, 'Indexer /search p99, videos seen before', probe['warm_p99'] * 1e3, 'ms',
               'Indexer /search p50'),
        Result(section, 'Indexer /search p50, first use after preload', probe['preloaded_p50'] * 1e3, 'ms',
               'Indexer /search p50', 'another storage, read ahead as the page does at start-up (Library.warm_up)'),
        Result(section, 'Indexer /search p99, first use after preload', probe['preloaded_p99'] * 1e3, 'ms',
               'Indexer /search p50'),
        Result(section, 'preload: every video\'s rows verified, all keyframe times read', probe['preload_s'], 's'),
        Result(section, 'text query p50 (encode + search)', probe['query_p50'] * 1e3, 'ms',
               note=f'{len(QUERY_TEXTS)} sentences, fp32 ViT-B/32 text tower on its default runtime '
                    f'(auto: ONNX Runtime, 2 threads) + Indexer /search, on the storage read ahead'),
        Result(section, 'text query p99 (encode + search)', probe['query_p99'] * 1e3, 'ms'),
        Result(section, f'exact search over {probe["exact_rows"]} rows (below the IVF threshold) p50',
               probe['exact_p50'] * 1e3, 'ms', note='one faiss list scanned whole, 1 thread'),
        Result(section, 'build (add videos)', count / build_seconds, 'keyframes/s',
               note=f'{build_seconds:.0f} s through the storage with the {built_with} index, {os.cpu_count()} cores, '
                    f'fsync per video' + (' (built by an earlier run, kept in bench/out)' if cached else '')),
        Result(section, f'{DEFAULT.kind} index from the stored rows', index_seconds, 's',
               note='rows verified, trained on a sample, filled and saved (a missing or damaged index, a switch)'),
        Result(section, 'open (load saved index)', probe['open_s'], 's'),
        Result(section, 'resident memory per million', probe['rss_bytes'] / millions / 1e9, 'GB',
               note=f"growth of the search process from before open to after the queries "
                    f"(whole process: {probe['rss_total'] / 1e9:.2f} GB)"),
        Result(section, 'disk: embeddings', disk['embeddings.f16'], 'B/keyframe', note='float16'),
        Result(section, f'disk: {DEFAULT.file_name()}', disk[DEFAULT.file_name()], 'B/keyframe', note='derived'),
        Result(section, 'disk: catalog', disk['catalog.sqlite'], 'B/keyframe', note='SQLite'),
    ]
    return rows + hnsw_comparison(folder, section, quick)


def hnsw_comparison(folder: Path, section: str, quick: bool) -> list[Result]:
    """The same queries through hnswlib's graph (`index: hnsw`, the Indexer's M and ef), in another process."""
    graph = _probe(folder, 'hnsw', quick, compare=True)
    name = f"comparison: hnswlib M={GRAPH['M']} ef_search={GRAPH['ef_search']}"
    return [
        Result(section, f'{name}, recall@10', graph['recall'], '', 'recall@10 vs exact', 'index: hnsw'),
        Result(section, f'{name}, top-10 p50', graph['ann_p50'] * 1e3, 'ms', 'numpy brute force p50', '1 thread'),
        Result(section, f'{name}, top-10 p99', graph['ann_p99'] * 1e3, 'ms', 'numpy brute force p50'),
        *[Result(section, f'comparison: hnswlib ef_search={ef}: recall@10 / p50', graph['sweep'][str(ef)]['recall'],
                 '', note=f"p50 {graph['sweep'][str(ef)]['p50'] * 1e3:.2f} ms") for ef in SWEEP['hnsw'][1]],
        *[Result(section, f'comparison: hnswlib ef_search={ef}: recall@10, queries far from every keyframe',
                 graph['far'][str(ef)]['recall'], '') for ef in SWEEP['hnsw'][1]],
        Result(section, f'{name}, top-10 segments as with exact candidates', graph['segment_agreement'], ''),
        Result(section, f'{name}, resident memory per million', graph['rss_bytes'] / (graph['count'] / 1e6) / 1e9,
               'GB', 'resident memory per million'),
        Result(section, f'{name}, open', graph['open_s'], 's', 'open (load saved index)',
               'built from the rows on first use, then loaded'),
    ]


def _probe(folder: Path, kind: str, quick: bool, compare: bool = False) -> dict:
    argv = [sys.executable, '-m', 'bench.indexer', '--probe', str(folder), kind]
    argv += (['--quick'] if quick else []) + (['--compare'] if compare else [])
    return json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)


def built(folder: Path, count: int) -> tuple[float, str, bool]:
    """Build the workspace unless an earlier run left it complete; (seconds the build took, the index it was
    built with, whether cached)."""
    record = folder / 'build.json'
    if record.exists():
        saved = json.loads(record.read_text())
        return saved['seconds'], saved.get('index', 'hnsw'), True
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    seconds = build(folder / 'workspace', count)
    record.write_text(json.dumps({'seconds': seconds, 'count': count, 'index': DEFAULT.kind}))
    return seconds, DEFAULT.kind, False


def build(folder: Path, count: int) -> float:
    """Add `count` keyframes as videos of FRAMES_PER_VIDEO (with their shot cuts) through the storage; seconds."""
    from executors.storage.local.local_storage import HnswlibStorage

    storage = HnswlibStorage(folder)
    started = time.perf_counter()
    for n, first in enumerate(range(0, count, FRAMES_PER_VIDEO)):
        vectors, lengths = keyframe_vectors(min(FRAMES_PER_VIDEO, count - first), seed=n)
        times = np.arange(len(vectors), dtype=np.float64)
        cuts = np.cumsum(lengths)[:-1].astype(float) - 0.5  # between a shot's last keyframe and the next's first
        record = VideoRecord(f'{n:064x}', f'/videos/{n}.mp4', duration=float(len(vectors)), fps=25.0, width=640,
                             height=360)
        storage.add(record, Frames(times, vectors, [''] * len(vectors)),
                    cuts.tolist(), [], SPACE)
    storage.close()  # saves the index
    return time.perf_counter() - started


def index_built(folder: Path) -> float:
    """Seconds to build the default index from the stored rows, in a fresh process (recorded once per workspace)."""
    record = folder / 'index-build.json'
    if not record.exists():
        for name in (DEFAULT.file_name(), Path(DEFAULT.file_name()).with_suffix('.json').name):
            (folder / 'workspace' / name).unlink(missing_ok=True)
        seconds = float(subprocess.run([sys.executable, '-m', 'bench.indexer', '--index', str(folder)], check=True,
                                       capture_output=True, text=True).stdout)
        record.write_text(json.dumps({'seconds': seconds, 'index': DEFAULT.kind}))
    return json.loads(record.read_text())['seconds']


def _build_index(folder: Path) -> float:
    from executors.storage.local.local_storage import HnswlibStorage

    started = time.perf_counter()
    storage = HnswlibStorage(folder / 'workspace')
    storage.nearest(np.zeros(DIM, np.float32), 1)  # builds the index from the rows, and saves it
    storage.close()
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
    """Queries and their exact CANDIDATES nearest, kept with the workspace: new keyframes of stored shots, and
    random directions, far from every keyframe as a sentence's embedding is from CLIP's image embeddings."""
    if (folder / 'far.npy').exists():
        return
    stored = stored_rows(folder)
    rng = np.random.default_rng(count)
    picked = stored[np.sort(rng.choice(len(stored), QUERIES, replace=False))].astype(np.float32)
    queries = _unit(picked + FRAME_NOISE * rng.normal(size=picked.shape) / np.sqrt(DIM))
    far = _unit(rng.normal(size=(QUERIES, DIM)))
    np.save(folder / 'queries.npy', queries)
    np.save(folder / 'exact.npy', _exact_nearest(stored, queries))
    np.save(folder / 'far_exact.npy', _exact_nearest(stored, far))
    np.save(folder / 'far.npy', far)


def _exact_nearest(stored: np.ndarray, queries: np.ndarray) -> np.ndarray:
    exact = np.empty((len(queries), CANDIDATES), dtype=np.int64)
    best = np.full((len(queries), CANDIDATES), -np.inf, dtype=np.float32)
    for start in range(0, len(stored), 100_000):
        scores = queries @ np.asarray(stored[start:start + 100_000], dtype=np.float32).T
        labels = np.concatenate([exact, np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)], 1)
        merged = np.concatenate([best, scores], 1)
        keep = np.argsort(-merged, axis=1, kind='stable')[:, :CANDIDATES]
        exact, best = np.take_along_axis(labels, keep, 1), np.take_along_axis(merged, keep, 1)
    return exact


def probe(folder: Path, kind: str, quick: bool, compare: bool) -> dict:
    """In a fresh process: open the workspace with the `kind` index, query it, report times, recall and resident
    memory (`compare`: the index's own figures and segment agreement only)."""
    from executors.retrieval import search
    from executors.storage.local.local_storage import HnswlibStorage

    queries, exact = np.load(folder / 'queries.npy'), np.load(folder / 'exact.npy')
    top10 = [set(e[:10].tolist()) for e in exact]
    rss_before = _rss()
    started = time.perf_counter()
    storage = HnswlibStorage(folder / 'workspace', **({'index': 'hnsw', **GRAPH} if kind == 'hnsw' else {}))
    storage.nearest(queries[0], 1)  # loads the index
    open_s = time.perf_counter() - started
    vectors = storage.vectors
    ann, found = _timed_top10(vectors, queries)
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
    sweep = {str(value): _swept(vectors, kind, value, queries, top10) for value in SWEEP[kind][1]}
    far_top10 = [set(e[:10].tolist()) for e in np.load(folder / 'far_exact.npy')]
    far = {str(value): _swept(vectors, kind, value, np.load(folder / 'far.npy'), far_top10) for value in SWEEP[kind][1]}
    rss_after = _rss()
    figures = {'sweep': sweep, 'far': far, 'segment_agreement': float(np.mean(agreement)), 'rss_bytes': rss_after - rss_before,
               'rss_total': rss_after, 'open_s': open_s, 'count': len(stored_rows(folder)),
               'ann_p50': float(np.median(ann)), 'ann_p99': float(np.percentile(ann, 99)), 'recall': _recall(found, top10),
               'layout': _layout(vectors)}
    if compare:
        return figures
    exact_rows, exact_p50 = _exact_at_threshold(folder, queries)
    brute = _brute_force_seconds(folder, queries[:20])
    read_ahead = HnswlibStorage(folder / 'workspace')  # as the page has it after its warm-up
    started = time.perf_counter()
    read_ahead.preload()
    figures['preload_s'] = time.perf_counter() - started
    first_use = []
    for q in queries:
        started = time.perf_counter()
        search.search_segments(read_ahead, q, count=10, candidates=CANDIDATES, grouping=grouping)
        first_use.append(time.perf_counter() - started)
    figures['preloaded_p50'], figures['preloaded_p99'] = np.median(first_use), np.percentile(first_use, 99)
    query_times = [0.0] if quick else text_query_times(read_ahead, folder)
    return {**figures, 'query_p50': float(np.median(query_times)), 'query_p99': float(np.percentile(query_times, 99)),
            'brute_p50': brute, 'exact_rows': exact_rows, 'exact_p50': exact_p50,
            'search_p50': float(np.median(cold)), 'search_p99': float(np.percentile(cold, 99)),
            'warm_p50': float(np.median(warm)), 'warm_p99': float(np.percentile(warm, 99))}


def _timed_top10(vectors, queries: np.ndarray) -> tuple[list[float], list[np.ndarray]]:
    times, found = [], []
    for q in queries:
        started = time.perf_counter()
        labels, _ = vectors.nearest(q, 10)
        times.append(time.perf_counter() - started)
        found.append(labels)
    return times, found


def _swept(vectors, kind: str, value: int, queries: np.ndarray, top10: list[set]) -> dict:
    """Recall@10 and p50 with the index's search knob (nprobe or ef_search) at `value`, then put back."""
    index = vectors.index.index if kind == 'ivf' else vectors.index
    name = 'nprobe' if kind == 'ivf' else 'ef_search'
    before = getattr(index, name)
    setattr(index, name, value)
    times, found = _timed_top10(vectors, queries)
    setattr(index, name, before)
    return {'recall': _recall(found, top10), 'p50': float(np.median(times))}


def _layout(vectors) -> str:
    if hasattr(vectors.index, 'graph'):
        return 'hnswlib graph'
    lists = vectors.index.index.nlist
    return f'{lists} lists' if lists > 1 else 'one list: exact'


def _exact_at_threshold(folder: Path, queries: np.ndarray) -> tuple[int, float]:
    """The IVF index's exact layout over as many rows as it holds at most (the threshold, or all of a smaller
    workspace): p50 of a top-10 query, 1 thread."""
    from executors.storage.ann.ivf import IvfIndex

    stored = stored_rows(folder)
    rows = min(len(stored), DEFAULT.exact_below - 1)
    index = IvfIndex.create(DEFAULT, DIM, rows, lambda n: None, lambda: stored)
    index.add(np.arange(rows), np.asarray(stored[:rows], dtype=np.float32))
    times = []
    for q in queries:
        started = time.perf_counter()
        index.search(q, 10)
        times.append(time.perf_counter() - started)
    return rows, float(np.median(times))


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
    from executors.retrieval import search
    from executors.models.clip_encoding import encode_texts
    from executors.models.clip_model import load_clip
    from tests.factories import write_random_clip_checkpoint

    checkpoint = write_random_clip_checkpoint(folder / 'clip-random.pt', 'ViT-B/32')
    model = load_clip(str(checkpoint), 'cpu')
    encode_texts(model, ['warm up'], runtime='auto', saved_export=folder / 'text-tower.onnx')
    times = []
    for text in QUERY_TEXTS * 4:
        started = time.perf_counter()
        query = encode_texts(model, [text], runtime='auto', saved_export=folder / 'text-tower.onnx')[0]
        search.search_segments(storage, query, count=10, candidates=CANDIDATES, grouping=search.Grouping())
        times.append(time.perf_counter() - started)
    return times


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
    from executors.models.clip_model import image_space_id
    from executors.storage.local.local_storage import HnswlibStorage
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
        print(json.dumps(probe(Path(sys.argv[2]), sys.argv[3], quick='--quick' in sys.argv,
                               compare='--compare' in sys.argv)))
    elif sys.argv[1:2] == ['--index']:
        print(_build_index(Path(sys.argv[2])))
    elif sys.argv[1:2] == ['--build']:
        print(built(Path(sys.argv[2]), int(sys.argv[3])))
