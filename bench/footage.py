"""Shared footage at scale: `duplicates` precision and recall on planted variants, the offset error of
found copies, and its time at 1k and 10k videos.

Keyframe embeddings are synthetic, with the statistics that matter here: each video is a smooth
trajectory of 512-d unit vectors (a random walk around its own direction: consecutive keyframes
of a shot are close, the video drifts) with a shot cut every 5-15 s, one keyframe per second, 30 to
120 s long; all videos sit in a narrow cone (a shared mean direction: mean pairwise cosine of
unrelated keyframes about 0.5, as CLIP ViT-B/32's). A planted variant is a copy re-encoded (noise
of cosine ~0.98 on every keyframe), trimmed at either end (0-20 %), sampled at another phase (its
keyframes fall 0-0.9 s later, as 25 vs 30 fps gives) and missing 5 % of its keyframes. Negatives
that look alike: pairs of videos of one still picture (a test pattern), and pairs that share only a
4-s intro. Stored through the default backend's own add path.
"""
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import Result
from executors.retrieval.footage import find_duplicates
from executors.storage.backends import open_storage
from executors.storage.interface import Frames, ImageSpace, VideoRecord

DIM = 512
SPACE = ImageSpace('c' * 64, 'bench vectors')
THRESHOLD = 0.9  # the CLI's default


def run(quick: bool = False) -> list[Result]:
    results = quality(100 if quick else 200, 20 if quick else 40)
    for count in [300] if quick else [1000, 10_000]:
        results += speed(count)
    return results


def quality(videos: int, planted: int) -> list[Result]:
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        storage = open_storage('hnswlib', workspace=folder)
        truth, stills, intros = _library(storage, rng, videos, planted)
        start = time.perf_counter()
        groups = find_duplicates(storage, THRESHOLD)
        seconds = time.perf_counter() - start
        storage.close()
    found, errors = set(), []
    for group in groups:
        if group.part != 'footage':
            continue
        ids = {v for v, _, _ in group.videos}
        for original, (copy, offset) in truth.items():
            if {original, copy} <= ids:
                found.add(original)
                ranges = {v: s for v, s, _ in group.videos}
                errors.append(abs((ranges[original] - ranges[copy]) - offset))
    pairs = [frozenset(v for v, _, _ in g.videos) for g in groups if g.part == 'footage']
    true_pairs = sum(any(frozenset((o, c)) <= p for o, (c, _) in truth.items()) for p in pairs)
    false_stills = sum(any(frozenset(s) <= p for s in stills) for p in pairs)
    section = f'duplicates, {videos + planted + 2 * len(stills) + 2 * len(intros)} videos, {planted} planted copies'
    return [Result(section, 'recall of planted copies', len(found) / planted, 'fraction'),
            Result(section, 'precision of groups', true_pairs / max(len(pairs), 1), 'fraction'),
            Result(section, 'still-picture pairs taken for copies', false_stills, 'groups'),
            Result(section, 'offset error, 95th percentile', float(np.percentile(errors, 95)) if errors else -1, 's'),
            Result(section, 'offset within one keyframe interval', float(np.mean(np.array(errors) <= 1.0))
                   if errors else 0.0, 'fraction'),
            Result(section, 'duplicates time', seconds, 's')]


def speed(count: int) -> list[Result]:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as folder:
        storage = open_storage('hnswlib', workspace=folder)
        _library(storage, rng, count, count // 20)
        storage.save()
        start = time.perf_counter()
        find_duplicates(storage, THRESHOLD)
        seconds = time.perf_counter() - start
        storage.close()
    return [Result('duplicates time', f'{count + count // 20} videos', seconds, 's', note='target <= 60 s at 10k')]


def _library(storage, rng, videos: int, planted: int):
    cone = _unit(rng.normal(size=DIM))
    stored, truth = [], {}
    for n in range(videos):
        vectors = _video(rng, cone, int(rng.integers(30, 121)))
        stored.append(_add(storage, f'v{n}', np.arange(len(vectors), dtype=float), vectors))
    for n in range(planted):
        original = stored[n]
        times, vectors = original[1], original[2]
        cut = int(len(times) * rng.uniform(0, 0.2)), int(len(times) * rng.uniform(0.8, 1))
        keep = [i for i in range(*cut) if rng.random() > 0.05]
        phase = rng.uniform(0, 0.9)
        copy = _add(storage, f'copy{n}', times[keep] - times[cut[0]] + phase, _noisy(rng, vectors[keep]))
        truth[original[0]] = (copy[0], times[cut[0]] - phase)
    still = _unit(cone * 2 + rng.normal(size=DIM))
    stills = [(_add(storage, 'still_a', np.arange(20.0), _noisy(rng, np.tile(still, (20, 1))))[0],
               _add(storage, 'still_b', np.arange(30.0), _noisy(rng, np.tile(still, (30, 1))))[0])]
    intro = _video(rng, cone, 4)
    intros = [(_add(storage, 'intro_a', np.arange(44.0), np.vstack([intro, _video(rng, cone, 40)]))[0],
               _add(storage, 'intro_b', np.arange(34.0), np.vstack([_noisy(rng, intro), _video(rng, cone, 30)]))[0])]
    return truth, stills, intros


def _video(rng, cone: np.ndarray, seconds: int) -> np.ndarray:
    shots, frames = [], 0
    while frames < seconds:
        length = min(int(rng.integers(5, 16)), seconds - frames)
        centre = cone * 1.4 + rng.normal(size=DIM) / np.sqrt(DIM) * 1.4
        walk = np.cumsum(rng.normal(size=(length, DIM)) / np.sqrt(DIM) * 0.5, axis=0)  # 1 s apart: cos ~0.97
        shots.append(centre + walk)
        frames += length
    return _unit(np.vstack(shots))


def _noisy(rng, vectors: np.ndarray) -> np.ndarray:
    return _unit(vectors + rng.normal(size=vectors.shape) / np.sqrt(DIM) * 0.2)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _add(storage, name: str, times: np.ndarray, vectors: np.ndarray):
    video_id = hashlib.sha256(name.encode()).hexdigest()
    record = VideoRecord(video_id, f'/videos/{name}.mp4', duration=float(times[-1] + 1), fps=25.0, width=640,
                         height=360)
    storage.add(record, Frames(times, vectors.astype(np.float32), [''] * len(times)), [], [], SPACE)
    return video_id, times, vectors
