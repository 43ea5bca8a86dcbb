"""Shared footage at scale: `duplicates` precision and recall on planted variants, the offset error of
found copies, and its time at 1k and 10k videos; where `search --video` places planted clips.

Keyframe embeddings are synthetic, drawn by bench/clip_like.py (CLIP ViT-B/32's statistics: a narrow
cone, a power-law spectrum, topics and subtopics, shots that drift, one keyframe per second), each
video 30 to 120 s long (clip_like's own 1-15 minutes would make 10k videos 5M keyframes: more than
this machine builds in a bench's time). Unrelated videos of one subtopic have keyframes at cosine
~0.78, shots of one video ~0.87: look-alikes the alignment must tell from copies. A planted variant is
a copy re-encoded (noise of cosine ~0.98 on every keyframe), trimmed at either end (0-20 %), sampled
at another phase (its keyframes fall 0-0.9 s later, as 25 vs 30 fps gives) and missing 5 % of its
keyframes. Negatives that look alike: pairs of videos of one still picture (a test pattern), and
pairs that share only a 4-s intro. A planted clip (one per planted copy) is 3-15 s of a stored video taken
as a short re-encoded excerpt: noise of cosine ~0.98, another sampling phase, 5 % of keyframes missing;
it is placed right when the first source named is its video and the start is within one keyframe
interval (1 s) of where it was cut. Stored through the default backend's own add path; the 1k and
10k libraries are built once into the system's temporary folder and reused by later runs (the time
reported is that of `duplicates` only).
"""
import hashlib
import shutil
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from bench import clip_like
from bench.common import Result
from executors.retrieval.footage import find_duplicates, locate_clip
from executors.storage.ann.base import IndexConfig
from executors.storage.backends import open_storage
from executors.storage.local.catalog import Catalog, VideoRow, now_iso
from executors.storage.local.vector_store import VectorStore
from executors.storage.interface import Frames, ImageSpace, VideoRecord

DIM = 512
VERSION = 'v2'  # of the generated libraries kept between runs: change it with the generator
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
        truth, stills, intros, stored = _library(storage, rng, videos, planted)
        start = time.perf_counter()
        groups = find_duplicates(storage, THRESHOLD)
        seconds = time.perf_counter() - start
        placed = _clip_errors(storage, rng, stored[planted:2 * planted])  # videos without a planted copy
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
            Result(section, 'duplicates time', seconds, 's'),
            Result(section, 'clips placed within one keyframe interval (search --video)',
                   float(np.mean(np.array(placed) <= 1.0)), 'fraction',
                   note=f'{len(placed)} clips of 3-15 s; 95th percentile error '
                        f'{np.percentile([e for e in placed if e < np.inf] or [np.inf], 95):.2f} s; wrong video: '
                        f'{sum(e == np.inf for e in placed)}')]


def _clip_errors(storage, rng, sources: list) -> list[float]:
    """For a clip cut from each of `sources` ((video id, times, vectors)): the error of the start where the first
    source found places it (inf when that is another video, or none is found)."""
    errors = []
    for video_id, times, vectors in sources:
        length = int(rng.integers(3, 16))
        first = int(rng.integers(0, max(len(times) - length, 1)))
        keep = [i for i in range(first, min(first + length, len(times))) if rng.random() > 0.05] or [first]
        phase = rng.uniform(0, 0.9)
        found = locate_clip(storage, times[keep] - times[first] + phase, _noisy(rng, vectors[keep]).astype(np.float32),
                            float(length), 1)
        right = found and found[0].video_id == video_id
        errors.append(abs(found[0].start - (times[first] - phase)) if right else np.inf)
    return errors


def speed(count: int) -> list[Result]:
    storage = open_storage('hnswlib', workspace=str(library_folder(count)))
    storage.preload()
    start = time.perf_counter()
    groups = find_duplicates(storage, THRESHOLD)
    seconds = time.perf_counter() - start
    videos, keyframes = len(storage.videos()), sum(v.frame_count for v in storage.videos())
    storage.close()
    return [Result('duplicates time', f'{videos} videos ({keyframes} keyframes)', seconds, 's',
                   note=f'{len(groups)} groups; target <= 60 s at 10k')]


def library_folder(count: int) -> Path:
    """The workspace of `count` generated videos (and count / 20 planted copies), built on first use."""
    folder = Path(tempfile.gettempdir()) / f'vced-bench-footage-{count}-{VERSION}'
    if not (folder / 'built').is_file():  # a library left half-built by an interrupted run is built again
        shutil.rmtree(folder, ignore_errors=True)
        writer = _BulkWriter(folder)
        _library(writer, np.random.default_rng(1), count, count // 20)
        writer.flush()
        storage = open_storage('hnswlib', workspace=str(folder))
        storage.preload()  # builds the index from the rows, and saves it
        storage.close()
        (folder / 'built').touch()
    return folder


class _BulkWriter:
    """The 1k/10k libraries written with the local backend's own parts: float16 rows appended a few
    hundred videos at a time, then one catalog transaction per video; the index is built from the rows
    when the workspace is first opened, as after an upgrade. storage.add (an fsync and an index update per
    video) takes over an hour for 10k videos on this shared machine."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True)
        self.folder, self.pending = folder, []
        self.catalog = Catalog(folder / 'catalog.sqlite', create=True)
        self.vectors = VectorStore(folder, DIM, IndexConfig())

    def add(self, record: VideoRecord, frames: Frames, *_) -> None:
        self.pending.append((record, frames))
        if len(self.pending) >= 500:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        first, _ = self.vectors.append(np.vstack([frames.vectors for _, frames in self.pending]))
        self.vectors.forget_adding()
        for record, frames in self.pending:
            rows = np.ascontiguousarray(frames.vectors, dtype=np.float16)
            row = VideoRow(record.id, record.path, record.duration, record.fps, record.width, record.height, now_iso(),
                           first, len(rows), checksum=zlib.crc32(rows.tobytes()))
            self.catalog.add_video(row, list(frames.timestamps), list(frames.thumbnails), [], [],
                                   rows.astype(np.float32).mean(axis=0), DIM,
                                   {'image_space': SPACE.identity, 'image_model': SPACE.name})
            first += len(rows)
        self.pending = []


def _library(storage, rng, videos: int, planted: int):
    stored, truth = [], {}
    for n in range(videos):
        vectors = _video(n, int(rng.integers(30, 121)))
        stored.append(_add(storage, f'v{n}', np.arange(len(vectors), dtype=float), vectors))
    for n in range(planted):
        original = stored[n]
        times, vectors = original[1], original[2]
        cut = int(len(times) * rng.uniform(0, 0.2)), int(len(times) * rng.uniform(0.8, 1))
        keep = [i for i in range(*cut) if rng.random() > 0.05]
        phase = rng.uniform(0, 0.9)
        copy = _add(storage, f'copy{n}', times[keep] - times[cut[0]] + phase, _noisy(rng, vectors[keep]))
        truth[original[0]] = (copy[0], times[cut[0]] - phase)
    still = _video(videos + 1, 1)[0]  # one picture, every keyframe of it a little different (noise)
    stills = [(_add(storage, 'still_a', np.arange(20.0), _noisy(rng, np.tile(still, (20, 1))))[0],
               _add(storage, 'still_b', np.arange(30.0), _noisy(rng, np.tile(still, (30, 1))))[0])]
    intro = _video(videos + 2, 4)
    intros = [(_add(storage, 'intro_a', np.arange(44.0), np.vstack([intro, _video(videos + 3, 40)]))[0],
               _add(storage, 'intro_b', np.arange(34.0), np.vstack([_noisy(rng, intro), _video(videos + 4, 30)]))[0])]
    return truth, stills, intros, stored


def _video(number: int, seconds: int) -> np.ndarray:
    """Keyframe embeddings of clip_like's video `number`, `seconds` long (one keyframe a second)."""
    semantic, _, _ = clip_like.video(number, seconds)
    return clip_like.images(semantic, np.random.default_rng([number, 2]))


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
