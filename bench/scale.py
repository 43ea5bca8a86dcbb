"""Scaling out: Milvus Lite against hnswlib (search p50/p99 and recall@10 at 100k keyframes), indexing on a
local Ray instance with 1 and 2 encoder workers, and an estimate of indexing 10,000 video-hours on N GPU
workers with Milvus Distributed (`python -m bench.scale [--quick]` prints the table and the estimate).

Keyframes are tests.factories.clustered_vectors (512-d, ViT-B/32's size, around 4000 scene
directions). hnswlib runs with the Indexer's defaults (M 16, ef_construction 100, ef_search 256), so
does the Milvus collection's HNSW index. Milvus is queried from a fresh process through
MilvusStorage.nearest (as a search command does: gRPC to the embedded server, then the check that
each hit's video is stored), after the writing process has closed the file.
"""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Result, markdown_table
from executors.storage.interface import Frames, ImageSpace, VideoRecord
from tests.factories import clustered_vectors, make_video, write_random_clip_checkpoint

DIM, CENTRES, NOISE = 512, 4000, 0.5
FRAMES_PER_VIDEO = 500
QUERIES = 200
GRAPH = {'M': 16, 'ef_construction': 100, 'ef_search': 256}
ROOT = Path(__file__).resolve().parent.parent

# Assumptions of the 10,000-hour estimate (not measured here: no GPU was lent to this work)
GPU_IMAGES_PER_S = 1500.0  # ViT-B/32 fp16 keyframes/s on one data-centre GPU, preprocessing included
NODE_VCPUS = 32  # CPU cores for decoding beside each GPU
NODE_PRICE = 2.5  # USD per hour for such a node (one GPU, 32 vCPUs), on demand
MILVUS_PRICE = 3.0  # USD per hour for a small Milvus Distributed cluster holding ~110 GB of HNSW
DECODE_PER_CORE = 8.7 / 2  # video-s/s per core: VideoLoader uniform 1 fps, 720p30 H.264 (bench.loader, 2 cores)


def run(quick: bool = False) -> list[Result]:
    count = 10_000 if quick else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        # Ray first: its start-up has a 30-second deadline, best met before Milvus Lite has loaded the machine
        on_ray = ray_throughput(Path(tmp), quick)
        return search(Path(tmp), count) + on_ray


def search(tmp: Path, count: int) -> list[Result]:
    """hnswlib vs Milvus Lite: build time, p50/p99 latency and recall@10 of the same queries."""
    import hnswlib

    vectors = clustered_vectors(count + QUERIES, DIM, CENTRES, NOISE)
    data, queries = vectors[:count], vectors[count:]
    exact = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    section = f'nearest 10 of {count // 1000}k keyframes, {QUERIES} queries'

    started = time.perf_counter()
    graph = hnswlib.Index(space='ip', dim=DIM)
    graph.init_index(max_elements=count, M=GRAPH['M'], ef_construction=GRAPH['ef_construction'])
    graph.add_items(data, np.arange(count))
    graph.set_ef(GRAPH['ef_search'])
    build = time.perf_counter() - started
    latencies, found = [], []
    for query in queries:
        started = time.perf_counter()
        labels, _ = graph.knn_query(query[None], k=10, num_threads=1)
        latencies.append(time.perf_counter() - started)
        found.append(labels[0])
    results = _rows(section, 'hnswlib (the default backend)', build, latencies, _recall(found, exact))

    uri = str(tmp / 'milvus.db')
    np.save(tmp / 'queries.npy', queries)
    started = time.perf_counter()
    _milvus_fill(uri, data, tmp)
    build = time.perf_counter() - started
    out = subprocess.run([sys.executable, '-m', 'bench.scale', '--query', uri, str(tmp / 'queries.npy')], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    found = [[video * FRAMES_PER_VIDEO + frame for video, frame in hits] for hits in measured['hits']]
    baseline = 'hnswlib (the default backend)'
    results += _rows(section, 'Milvus Lite (MilvusStorage.nearest)', build, measured['latencies'],
                     _recall(found, exact), baseline)
    return results


def _milvus_fill(uri: str, data: np.ndarray, tmp: Path) -> None:
    from executors.storage.milvus.milvus_storage import MilvusStorage

    storage = MilvusStorage(uri, workspace=tmp, M=GRAPH['M'], ef_construction=GRAPH['ef_construction'],
                            ef_search=GRAPH['ef_search'])
    for video in range(len(data) // FRAMES_PER_VIDEO):
        rows = data[video * FRAMES_PER_VIDEO:(video + 1) * FRAMES_PER_VIDEO]
        storage.add(VideoRecord(f'{video:064x}', f'/videos/{video}.mp4', FRAMES_PER_VIDEO, 25.0, 640, 360),
                    Frames(np.arange(len(rows), dtype=np.float64), rows, []), [], [], ImageSpace('bench'))
    storage.client.flush(storage.names['frames'])
    storage.close()


def _query(uri: str, queries_path: str) -> None:
    """In a fresh process: time MilvusStorage.nearest for each query; print JSON (latencies, hits)."""
    from executors.storage.milvus.milvus_storage import MilvusStorage

    storage = MilvusStorage(uri, workspace=Path(uri).parent, ef_search=GRAPH['ef_search'])
    queries = np.load(queries_path)
    storage.nearest(queries[0], 10)  # loads the collections
    latencies, hits = [], []
    for query in queries:
        started = time.perf_counter()
        neighbours = storage.nearest(query, 10)
        latencies.append(time.perf_counter() - started)
        hits.append([(int(v, 16), int(f)) for v, f in zip(neighbours.video_ids, neighbours.frames)])
    print(json.dumps({'latencies': latencies, 'hits': hits}))


def _recall(found: list, exact: np.ndarray) -> float:
    return float(np.mean([len(set(map(int, f)) & set(map(int, e))) / 10 for f, e in zip(found, exact)]))


def _rows(section: str, name: str, build: float, latencies: list[float], recall: float,
          baseline: str = '') -> list[Result]:
    return [Result(section, f'{name}: p50', float(np.median(latencies)) * 1000, 'ms',
                   f'{baseline}: p50' if baseline else ''),
            Result(section, f'{name}: p99', float(np.percentile(latencies, 99)) * 1000, 'ms'),
            Result(section, f'{name}: recall@10', recall, '', f'{baseline}: recall@10' if baseline else ''),
            Result(section, f'{name}: build', build, 's', f'{baseline}: build' if baseline else '')]


def ray_throughput(tmp: Path, quick: bool) -> list[Result]:
    """Index the same videos on a local Ray instance (2 CPUs) with 1 and 2 encoder workers."""
    import ray

    from executors.documents import VideoDoc
    from library.distributed import connect, index_on_ray
    from library.pipeline import Flow

    preset, count, seconds = ('tiny', 2, 5) if quick else ('ViT-B/32', 4, 20)
    checkpoint = write_random_clip_checkpoint(tmp / 'clip.pt', preset)
    videos = [make_video(tmp / 'videos' / f'{i}.mp4', duration=seconds, size='640x360', source=source)
              for i, source in zip(range(count), ['testsrc2', 'smptebars', 'mandelbrot', 'rgbtestsrc'])]
    connect('local', num_cpus=2)
    section = f'Ray, {count} videos x {seconds} s 640x360, 1 keyframe/s, {preset} fp32 CPU, Milvus Lite'
    results = []
    try:
        for workers in (1, 2):
            with Flow(ROOT / 'flow.yml', workspace=str(tmp / f'ray{workers}'), model=str(checkpoint), backend='milvus',
                      asr='off', precision='fp32', reuse_below=0) as flow:
                started = time.perf_counter()
                docs = list(index_on_ray([VideoDoc(uri=str(v)) for v in videos], flow, workers=workers,
                                         worker_cpus=2 / workers))
                wall = time.perf_counter() - started
            frames = sum(doc.frame_count for doc in docs)
            assert all(doc.status == 'indexed' for doc in docs), [doc.error for doc in docs]
            results.append(Result(section, f'{workers} worker(s): video-seconds per second', count * seconds / wall,
                                  'x', '1 worker(s): video-seconds per second' if workers == 2 else '',
                                  f'{frames} keyframes in {wall:.1f} s, worker start and model load included'))
    finally:
        ray.shutdown()
    return results


def estimate(results: list[Result]) -> str:
    """The 10,000 video-hour estimate, from the measured per-worker CPU rate and the assumptions above."""
    ray_rows = [r for r in results if r.section.startswith('Ray') and r.name.startswith('1 worker')]
    cpu_rate = ray_rows[0].value if ray_rows else float('nan')
    keyframes = 10_000 * 3600  # 1 keyframe/s
    decode = NODE_VCPUS * DECODE_PER_CORE  # video-s/s per node, decoding on every core
    node_rate = min(decode, GPU_IMAGES_PER_S)  # keyframes/s per node: 1 keyframe per video-second
    node_hours = keyframes / node_rate / 3600
    lines = [f'- Measured here: one CPU worker (2 cores, ViT-B/32 fp32) indexes {cpu_rate:.2f} video-seconds per '
             f'second: 10,000 video-hours would take {10_000 / cpu_rate / 24 / 365:.1f} years on one such worker.',
             f'- Assumed per GPU node: {GPU_IMAGES_PER_S:.0f} keyframes/s of ViT-B/32 fp16 encoding (not measured), '
             f'{NODE_VCPUS} vCPUs decoding at {DECODE_PER_CORE:.2f} video-s/s per core (measured on this CPU) = '
             f'{decode:.0f} video-s/s: decoding, not the GPU, bounds a node at {node_rate:.0f} keyframes/s '
             f'({node_rate / GPU_IMAGES_PER_S:.0%} GPU use).',
             f'- 10,000 video-hours = {keyframes / 1e6:.0f}M keyframes = {node_hours:.0f} node-hours '
             f'(~${node_hours * NODE_PRICE:,.0f} at ${NODE_PRICE}/node-hour), plus Milvus Distributed '
             f'(~{keyframes * DIM * 4 * 1.5 / 1e9:.0f} GB of HNSW in query nodes, ~${MILVUS_PRICE}/h):']
    for nodes in (1, 4, 16, 64):
        hours = node_hours / nodes
        lines.append(f'  - N = {nodes:>2} GPU nodes: {hours:,.1f} h wall, ~${node_hours * NODE_PRICE + hours * MILVUS_PRICE:,.0f}')
    return '\n'.join(lines)


if __name__ == '__main__':
    if sys.argv[1:2] == ['--query']:
        _query(sys.argv[2], sys.argv[3])
    else:
        measured = run(quick='--quick' in sys.argv)
        print(markdown_table(measured))
        print()
        print(estimate(measured))
