"""The HTTP API under load: searches per second and p50/p99 latency at 1, 8 and 32 concurrent clients, idle
and while an index job runs, over a library of 100k keyframes (`python -m bench.api [--quick] [--only idle|job|memory]`).

The library is bench/indexer.py's synthetic keyframes (videos of 500, clustered in shots), stored under the
image space of a randomly initialised ViT-B/32 checkpoint, which the server loads: its text tower costs
what the real one does. Each video is spoken over from start to end, as faster-whisper segments speech:
a cue about every 4 s of 6 to 14 words (Zipf-drawn made-up words, one word in fifty one the queries use),
embedded by that text tower for search by meaning; so a search runs what it runs on a library with speech
(words, meaning, fusion with what is seen). Every request is a new sentence, so the query-embedding cache
never answers one (a separate row shows the cached case). The server's CPU time per search is given beside each idle row:
on a machine shared with other work, latency measures the machine's load, CPU time what a search costs.
Clients are asyncio tasks sharing one httpx connection pool, in this process, on the same machine as the
server: their own CPU is part of what is measured. The server's resident memory is read from /proc
before and after a long run of requests.
"""
import argparse
import asyncio
import itertools
import json
import os
import shutil
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from bench.common import Result
from bench.indexer import FRAMES_PER_VIDEO, OUT, keyframe_vectors
from bench.speech import made_up_words, zipf
from tests.integration.api_server import ApiServer

BUILT = 'v2'  # bump when the synthetic library changes (invalidates bench/out/api-*)
CLIENTS = (1, 8, 32)
WORDS = ('man woman child dog cat car bike boat beach city forest kitchen snow rain night crowd stage piano '
         'football birthday cake mountain river road train plane sofa street market garden').split()


PARTS = ('idle', 'job', 'memory')  # the rows without an index job, those during one, the long run for memory


def run(quick: bool = False, parts: tuple[str, ...] = PARTS, long_run: int | None = None) -> list[Result]:
    keyframes = 10_000 if quick else 100_000
    requests = 24 if quick else 120  # per level of concurrency
    long_run = long_run or (300 if quick else 10_000)  # searches over which the server's memory is read
    folder = OUT / f'api-{keyframes}-{BUILT}'
    checkpoint = library(folder, keyframes)
    videos = job_videos(folder / 'videos', 1 if quick else 4, 30 if quick else 90) if 'job' in parts else folder
    server = ApiServer(['--workspace', folder / 'workspace', '--model', checkpoint, '--text-model', 'clip', '--asr', 'off',
                        '--allow-dir', videos], folder / 'server.log', ready_within=600)
    section = f'{keyframes // 1000}k keyframes'
    texts = sentences()
    results = []
    try:
        asyncio.run(load(server.url, 4, 20, texts))  # warm: the first queries build the ONNX session's caches
        cached = itertools.cycle(list(itertools.islice(sentences(seed=1), 16)))
        asyncio.run(load(server.url, 8, 32, cached))
        if 'idle' in parts:
            for clients in CLIENTS:
                results += rows(section, f'{clients} clients', *measured(server, clients, requests, texts))
            results += rows(section, '8 clients, cached query embeddings', *measured(server, 8, requests, cached))
        if 'job' in parts:
            results += during_job(server, section, videos, requests, texts)
        if 'memory' in parts:
            results += memory(server, section, long_run, cached)
    finally:
        server.close()
    return results


def measured(server: ApiServer, clients: int, count: int, texts) -> tuple[list[float], float, int, str]:
    """load(), with the server's CPU seconds per search and the machine's load average in a note."""
    cpu = cpu_seconds(server.process.pid)
    latencies, seconds, errors = asyncio.run(load(server.url, clients, count, texts))
    per_search = (cpu_seconds(server.process.pid) - cpu) / max(len(latencies), 1)
    return latencies, seconds, errors, f'; server CPU {per_search * 1000:.0f} ms per search; load average {load_average()}'


def rows(section: str, name: str, latencies: list[float], seconds: float, errors: int, note: str = '') -> list[Result]:
    ms = np.array(latencies) * 1000
    print(f'bench.api: {name}: {len(latencies) / seconds:.1f}/s, p50 {np.percentile(ms, 50):.1f} ms, '
          f'p99 {np.percentile(ms, 99):.1f} ms, {errors} errors{note}', file=sys.stderr)  # as it goes: runs are long
    return [Result(section, f'{name}: searches/s', len(latencies) / seconds, '/s',
                   note=f'{len(latencies)} searches, {errors} errors{note}'),
            Result(section, f'{name}: p50', float(np.percentile(ms, 50)), 'ms'),
            Result(section, f'{name}: p99', float(np.percentile(ms, 99)), 'ms')]


async def load(url: str, clients: int, count: int, texts) -> tuple[list[float], float, int]:
    """`count` searches by `clients` concurrent clients: (each one's seconds, the wall time, errors)."""
    latencies, errors = [], 0
    left = iter(range(count))

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        for _ in left:
            started = time.perf_counter()
            try:
                answer = await http.post('/v1/search', json={'text': next(texts), 'top': 10})
            except httpx.TransportError as e:  # counted, and shown: a benchmark run is not lost to one
                print(f'bench.api: {type(e).__name__}: {e}', file=sys.stderr)
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)
            errors += answer.status_code != 200

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        return latencies, time.perf_counter() - started, errors


def during_job(server: ApiServer, section: str, videos: Path, requests: int, texts) -> list[Result]:
    """The same loads while the server indexes `videos` (removed from the library again afterwards)."""
    results = []
    with server.client() as http:
        job = http.post('/v1/videos', json={'path': str(videos)}).json()['job']
        while http.get(f'/v1/jobs/{job}').json()['state'] == 'queued':
            time.sleep(0.05)
        for clients in CLIENTS:
            latencies, seconds, errors = asyncio.run(load(server.url, clients, requests, texts))
            state = http.get(f'/v1/jobs/{job}').json()
            note = (f"; the job {'still running' if state['state'] == 'running' else 'ended'} at the end; "
                    f'load average {load_average()}')
            results += rows(section, f'{clients} clients, index job running', latencies, seconds, errors, note)
        while (state := http.get(f'/v1/jobs/{job}').json())['state'] in ('queued', 'running'):
            time.sleep(0.5)
        for video in state['videos']:
            if video['status'] == 'indexed':
                http.delete(f"/v1/videos/{video['video_id']}")
    return results


def memory(server: ApiServer, section: str, count: int, texts) -> list[Result]:
    """The server's resident memory after a first tenth of `count` searches and after all of them (32 clients;
    sentences whose embeddings are cached, so that 10,000 fit in minutes on two cores)."""
    asyncio.run(load(server.url, 32, count // 10, texts))
    before = rss(server.process.pid)
    latencies, seconds, errors = asyncio.run(load(server.url, 32, count - count // 10, texts))
    after = rss(server.process.pid)
    print(f'bench.api: memory {before / 2**20:.0f} MB after {count // 10} searches, {after / 2**20:.0f} MB after {count} '
          f'({errors} errors, {len(latencies) / seconds:.0f}/s); load average {load_average()}', file=sys.stderr)
    return [Result(section, f'server memory after {count // 10} searches', before / 2**20, 'MB'),
            Result(section, f'server memory after {count} searches', after / 2**20, 'MB',
                   note=f'{(after - before) / 2**20:+.1f} MB over the last {count - count // 10} ({errors} errors, '
                        f'{len(latencies) / seconds:.0f}/s)')]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time `pid` has used."""
    with open(f'/proc/{pid}/stat') as stat:
        fields = stat.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def load_average() -> str:
    return ', '.join(f'{x:.1f}' for x in os.getloadavg())


def rss(pid: int) -> int:
    with open(f'/proc/{pid}/status') as status:
        return int(next(line for line in status if line.startswith('VmRSS')).split()[1]) * 1024


def sentences(seed: int = 0):
    """Endless distinct sentences of 4 to 9 words (a counter makes each one new)."""
    rng = np.random.default_rng(seed)
    for n in itertools.count():
        yield ' '.join(rng.choice(WORDS, rng.integers(3, 8))) + f' scene {n}'


def library(folder: Path, keyframes: int) -> Path:
    """The synthetic library in `folder`/workspace (built once, then kept), stored under the image space of a
    random ViT-B/32 checkpoint; returns the checkpoint."""
    from executors.models.clip_model import image_space_id
    from executors.storage.interface import Frames, ImageSpace, VideoRecord
    from executors.storage.local.local_storage import HnswlibStorage
    from executors.text_encoder import ClipTextTower
    from tests.factories import write_random_clip_checkpoint

    checkpoint = folder / 'clip-random-vit-b-32.pt'
    if (folder / 'built.json').exists():
        return checkpoint
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    write_random_clip_checkpoint(checkpoint, 'ViT-B/32')
    space = ImageSpace(image_space_id(str(checkpoint)), str(checkpoint))
    storage = HnswlibStorage(folder / 'workspace')
    tower = ClipTextTower(str(checkpoint), device='cpu')
    rng = np.random.default_rng(0)
    vocabulary = made_up_words(20_000, rng)
    started = time.perf_counter()
    for n, first in enumerate(range(0, keyframes, FRAMES_PER_VIDEO)):
        vectors, lengths = keyframe_vectors(min(FRAMES_PER_VIDEO, keyframes - first), seed=n)
        cuts = np.cumsum(lengths)[:-1].astype(float) - 0.5
        record = VideoRecord(f'{n:064x}', f'/videos/{n}.mp4', duration=float(len(vectors)), fps=25.0, width=640, height=360)
        cues = speech(float(len(vectors)), rng, vocabulary)
        for batch in range(0, len(cues), 64):
            for cue, embedding in zip(cues[batch:batch + 64], tower.encode([c.text for c in cues[batch:batch + 64]])):
                cue.embedding = embedding
        storage.add(record, Frames(np.arange(len(vectors), dtype=np.float64), vectors, [''] * len(vectors)),
                    cuts.tolist(), cues, space)
    storage.close()
    (folder / 'built.json').write_text(json.dumps({'keyframes': keyframes, 'seconds': time.perf_counter() - started}))
    return checkpoint


def speech(seconds: float, rng, vocabulary: list[str]) -> list:
    """Cues over `seconds` of continuous speech as faster-whisper segments it: one about every 4 s, of 6 to 14
    words drawn by Zipf's law from `vocabulary`, one word in fifty one of the queries' WORDS."""
    from executors.documents import CueDoc

    cues, start, weights = [], float(rng.uniform(0, 2)), zipf(len(vocabulary), 1.1)
    while start < seconds - 1:
        length = float(rng.uniform(2.5, 5.5))
        count = int(rng.integers(6, 15))
        drawn = [vocabulary[i] for i in rng.choice(len(vocabulary), count, p=weights)]
        words = [w if rng.random() >= 0.02 else str(rng.choice(WORDS)) for w in drawn]
        cues.append(CueDoc(start=start, end=min(start + length, seconds), text=' '.join(words), source='asr'))
        start += length + float(rng.uniform(0, 1))
    return cues


def job_videos(folder: Path, count: int, seconds: float) -> Path:
    """`count` generated videos of `seconds` each for the index job (made once)."""
    from tests.factories import make_video

    folder.mkdir(parents=True, exist_ok=True)
    for n, source in zip(range(count), itertools.cycle(['testsrc2', 'smptebars', 'mandelbrot', 'rgbtestsrc'])):
        if not (folder / f'job{n}.mp4').exists():
            make_video(folder / f'job{n}.mp4', duration=seconds, size='640x360', source=source)
    return folder


if __name__ == '__main__':
    from bench.common import markdown_table

    parser = argparse.ArgumentParser(prog='python -m bench.api', description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true', help='10k keyframes and fewer requests: a smoke run')
    parser.add_argument('--only', choices=PARTS, action='append',
                        help='run only these rows (repeatable): idle, job (an index job running), memory (10k searches)')
    parser.add_argument('--memory-searches', type=int, help='searches of the memory run (default 10,000)')
    arguments = parser.parse_args()
    print(markdown_table(run(quick=arguments.quick, parts=tuple(arguments.only or PARTS),
                             long_run=arguments.memory_searches)))
    sys.exit(0)
