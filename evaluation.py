"""Retrieval evaluation in the MSR-VTT style: R@1/5/10, MdR, MnR for text->video and video->text.

The figures are those of the field (CLIP4Clip, Frozen in Time, ...): each caption is a query over
the videos, each video a query over the captions, and a query's rank is the position of its first
correct answer. `python flow.py eval` runs it with the flow's own loader and encoders.
"""
import csv
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from executors.documents import DocList, QueryDoc, VideoDoc
from executors.errors import ConfigError, VcedError, VideoError
from executors.video_loader import file_sha256

RECALL_AT = (1, 5, 10)
POOLINGS = ('mean', 'max')  # mean: meanP (mean of frame embeddings, renormalised); max: the best frame
DIRECTIONS = ('text_to_video', 'video_to_text')
CACHE_VERSION = 1  # bump when what the cache holds changes meaning
CAPTION_BATCH = 256  # captions per /encode request: one TextEncoder batch each
RANK_BLOCK = 1024  # queries ranked at a time: bounds memory on full test sets (60k captions x 3k videos)

Progress = Callable[[str, int, int], None]  # progress(stage, done, total), stage 'videos' or 'captions'


# ----------------------------------------------------------------------------- metrics


def ranks(similarity: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """The 1-based rank of each row's best relevant column, counting ties against it.

    `similarity` and `relevant` (bool) are queries x candidates. A wrong candidate that scores the
    same as the best correct one is ranked above it (the pessimistic convention): otherwise a model
    that gives every input the same embedding would score R@1 = 100. Other correct candidates never
    push a query's rank down.
    """
    similarity = np.asarray(similarity)
    relevant = np.asarray(relevant, dtype=bool)
    if similarity.ndim != 2 or similarity.shape != relevant.shape:
        raise ValueError(f'similarity {similarity.shape} and relevant {relevant.shape} must be equal 2-d shapes')
    if not relevant.any(axis=1).all():
        raise ValueError(f'query {int(np.argmin(relevant.any(axis=1)))} has no relevant candidate')
    result = np.empty(len(similarity), dtype=np.int64)
    for start in range(0, len(similarity), RANK_BLOCK):
        scores, correct = similarity[start:start + RANK_BLOCK], relevant[start:start + RANK_BLOCK]
        best = np.where(correct, scores, -np.inf).max(axis=1, keepdims=True)
        result[start:start + RANK_BLOCK] = 1 + ((scores >= best) & ~correct).sum(axis=1)
    return result


def retrieval_metrics(query_ranks: np.ndarray) -> dict[str, float]:
    """R@1, R@5, R@10 (percent of queries whose rank is at most K), MdR and MnR (median, mean rank)."""
    query_ranks = np.asarray(query_ranks)
    if query_ranks.size == 0:
        raise ValueError('no queries to score')
    metrics = {f'R@{k}': 100.0 * float(np.mean(query_ranks <= k)) for k in RECALL_AT}
    metrics['MdR'] = float(np.median(query_ranks))
    metrics['MnR'] = float(np.mean(query_ranks))
    return metrics


def evaluate_similarity(similarity: np.ndarray, caption_video: np.ndarray) -> dict[str, dict[str, float]]:
    """Both directions' metrics from a captions x videos similarity matrix.

    `caption_video[i]` is the column of caption i's video. Text->video: each caption ranks the
    videos. Video->text: each video ranks every caption and counts its best-ranked own caption, so
    a video with several captions is one query (the standard for multi-caption test sets).
    """
    similarity = np.asarray(similarity)
    caption_video = np.asarray(caption_video)
    relevant = caption_video[:, None] == np.arange(similarity.shape[1])[None, :]
    return {'text_to_video': retrieval_metrics(ranks(similarity, relevant)),
            'video_to_text': retrieval_metrics(ranks(similarity.T, relevant.T))}


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def pooled_similarity(text: np.ndarray, frames: list[np.ndarray], pooling: str) -> np.ndarray:
    """Captions x videos cosine similarity; `frames[j]` holds video j's frame embeddings (frames x dim).

    'mean' compares each caption with the renormalised mean of a video's frames (CLIP4Clip's meanP);
    'max' takes the video's best-matching frame.
    """
    text = normalize(text)
    if pooling == 'mean':
        return text @ normalize(np.stack([normalize(f).mean(axis=0) for f in frames])).T
    if pooling == 'max':
        starts = np.cumsum([0] + [len(f) for f in frames[:-1]])
        return np.maximum.reduceat(text @ normalize(np.concatenate(frames)).T, starts, axis=1)
    raise ValueError(f"unknown pooling '{pooling}' (choose from {', '.join(POOLINGS)})")


# ----------------------------------------------------------------------------- the data set


class Caption(NamedTuple):
    video_id: str
    sentence: str


@dataclass
class Dataset:
    """Captions whose video was found, the videos they name, and the captions left out."""

    captions: list[Caption]
    videos: dict[str, Path]  # video_id -> file, in first-caption order
    missing: list[str] = field(default_factory=list)  # video_ids named by a caption but not found
    skipped: int = 0  # captions left out because their video is missing


def read_captions(path: str | Path) -> list[Caption]:
    """The (video_id, sentence) rows of an MSR-VTT-style CSV; other columns are ignored.

    Raises VcedError naming the file and the reason when it cannot be read, is empty, lacks a
    `video_id` or `sentence` column, or has a row with either left blank.
    """
    path = Path(path)
    try:
        with open(path, newline='', encoding='utf-8-sig') as f:
            reader = csv.DictReader(f)
            columns = [c.strip() for c in reader.fieldnames or []]
            if not columns:
                raise VcedError(f'{path}: empty file (expected a CSV with video_id and sentence columns)')
            missing = [c for c in ('video_id', 'sentence') if c not in columns]
            if missing:
                raise VcedError(f"{path}: no {' or '.join(missing)} column (found: {', '.join(columns)})")
            reader.fieldnames = columns
            captions = []
            for row in reader:
                video_id, sentence = (row.get('video_id') or '').strip(), (row.get('sentence') or '').strip()
                if not video_id or not sentence:
                    blank = 'video_id' if not video_id else 'sentence'
                    raise VcedError(f'{path}:{reader.line_num}: {blank} is blank')
                captions.append(Caption(video_id, sentence))
    except OSError as e:
        raise VcedError(f'{path}: cannot read the captions file ({e.strerror})') from e
    except (UnicodeDecodeError, csv.Error) as e:
        raise VcedError(f'{path}: not a UTF-8 CSV file ({e})') from e
    if not captions:
        raise VcedError(f'{path}: no captions (only a header)')
    return captions


def load_dataset(videos_dir: str | Path, captions_file: str | Path) -> Dataset:
    """Pair each caption with `<videos_dir>/**/<video_id>.<ext>`; captions without a video are skipped."""
    from flow import find_videos

    folder = Path(videos_dir)
    if not folder.is_dir():
        raise VcedError(f'{folder}: not a folder of videos')
    captions = read_captions(captions_file)
    files: dict[str, Path] = {}
    for path in find_videos([folder]):
        files.setdefault(path.stem, path)
    found = [c for c in captions if c.video_id in files]
    missing = list(dict.fromkeys(c.video_id for c in captions if c.video_id not in files))
    if not found:
        raise VcedError(f'{captions_file}: none of its {len(missing)} videos is in {folder} '
                        f'(expected files named <video_id>.mp4, e.g. {missing[0]}.mp4)')
    videos = {c.video_id: files[c.video_id] for c in found}
    return Dataset(found, videos, missing, len(captions) - len(found))


# ----------------------------------------------------------------------------- the frame-embedding cache


def flow_settings(flow) -> dict:
    """The flow's settings (flow.yml as overridden): what decides a video's frame embeddings.

    The model is identified by name, or by path, size and modification time for a checkpoint file;
    'auto' device is resolved (CUDA runs fp16, so its embeddings differ slightly from the CPU's).
    """
    from executors.clip_model import resolve_device

    shared = dict(flow.settings['with'])
    model = str(shared.get('model', ''))
    if os.path.isfile(model):
        stat = os.stat(model)
        shared['model'] = {'path': os.path.realpath(model), 'size': stat.st_size, 'mtime_ns': stat.st_mtime_ns}
    shared['device'] = resolve_device(str(shared.get('device', 'auto')))
    return {'with': shared, 'executors': flow.settings['executors']}


class FrameCache:
    """Frame embeddings per (video content, flow settings), as .npy files under `folder`.

    Any change to flow.yml, the overrides or the model file gives a new key, so a stale entry is
    never read; a changed video has a new content hash.
    """

    def __init__(self, folder: str | Path, settings: dict):
        self.folder = Path(folder)
        settings = {k: v for k, v in settings['with'].items() if k != 'workspace'} | {'executors': settings['executors']}
        text = json.dumps({'version': CACHE_VERSION, 'settings': settings}, sort_keys=True, default=str)
        self.settings_key = hashlib.sha256(text.encode()).hexdigest()[:16]

    def path(self, video_hash: str) -> Path:
        return self.folder / self.settings_key / f'{video_hash}.npy'

    def get(self, video_hash: str) -> np.ndarray | None:
        """The cached frame embeddings of this video, or None when not cached."""
        try:
            return np.load(self.path(video_hash), allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise VcedError(f'{self.path(video_hash)}: unreadable cache entry ({e}); delete {self.folder}') from e

    def put(self, video_hash: str, embeddings: np.ndarray) -> None:
        target = self.path(video_hash)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f'.{os.getpid()}.tmp')
        with open(partial, 'wb') as f:
            np.save(f, np.asarray(embeddings, dtype=np.float32), allow_pickle=False)
        os.replace(partial, target)  # never leave a half-written entry under the final name


# ----------------------------------------------------------------------------- running the flow


@dataclass
class Report:
    """Metrics per pooling and direction, and what was evaluated."""

    results: dict[str, dict[str, dict[str, float]]]  # pooling -> direction -> metric -> value
    captions: int
    videos: int
    frames: int  # frame embeddings over all videos
    cached: int  # videos whose frame embeddings came from the cache
    failed: dict[str, str]  # video_id -> why it could not be decoded (its captions are skipped)
    skipped: int  # captions left out: video missing or failed


def encode_videos(flow, videos: dict[str, Path], cache: FrameCache,
                  progress: Progress | None = None) -> tuple[dict[str, np.ndarray], dict[str, str], int]:
    """Frame embeddings per video_id (from the cache, else /encode), failures (video_id -> reason), cache hits."""
    embeddings: dict[str, np.ndarray] = {}
    failed: dict[str, str] = {}
    todo = []
    for video_id, path in videos.items():
        try:
            digest = file_sha256(path)  # the loader's video_id: the cache is keyed by content
        except VideoError as e:
            failed[video_id] = str(e)
        else:
            cached = cache.get(digest)
            if cached is None:
                todo.append((video_id, digest, path))
                continue
            embeddings[video_id] = cached
        _report(progress, 'videos', len(embeddings) + len(failed), len(videos))
    hits = len(embeddings)
    requests = (DocList[VideoDoc]([VideoDoc(uri=str(path))]) for _, _, path in todo)
    for (video_id, digest, path), docs in zip(todo, flow.stream('/encode', requests)):
        video = docs[0]
        if video.status == 'failed' or not len(video.frames):
            failed[video_id] = video.error or f'{path.name}: no frames decoded'
        else:
            frames = _frame_embeddings(video)
            cache.put(digest, frames)
            embeddings[video_id] = frames
        _report(progress, 'videos', len(embeddings) + len(failed), len(videos))
    return embeddings, failed, hits


def _frame_embeddings(video: VideoDoc) -> np.ndarray:
    if any(frame.embedding is None for frame in video.frames):
        raise ConfigError(f"{video.uri}: frames came back from '/encode' without embeddings "
                          "(does the flow's ImageEncoder handle '/encode'?)")
    return np.stack([np.asarray(frame.embedding, dtype=np.float32) for frame in video.frames])


def encode_captions(flow, sentences: list[str], progress: Progress | None = None) -> np.ndarray:
    """Captions x dim text embeddings from /encode, CAPTION_BATCH captions per request."""
    rows = []
    for start in range(0, len(sentences), CAPTION_BATCH):
        batch = DocList[QueryDoc]([QueryDoc(text=s) for s in sentences[start:start + CAPTION_BATCH]])
        for query in flow.post('/encode', batch):
            if query.embedding is None:
                raise ConfigError("captions came back from '/encode' without embeddings "
                                  "(does the flow's TextEncoder handle '/encode'?)")
            rows.append(np.asarray(query.embedding, dtype=np.float32))
        _report(progress, 'captions', len(rows), len(sentences))
    return np.stack(rows)


def evaluate_flow(flow, dataset: Dataset, cache: FrameCache, progress: Progress | None = None) -> Report:
    """Encode the data set's videos (through the cache) and captions with `flow`; score every pooling."""
    frames, failed, hits = encode_videos(flow, dataset.videos, cache, progress)
    captions = [c for c in dataset.captions if c.video_id in frames]
    if not captions:
        raise VcedError(f'no video could be decoded: {next(iter(failed.values()))}')
    video_ids = list(dict.fromkeys(c.video_id for c in captions))
    column = {video_id: j for j, video_id in enumerate(video_ids)}
    text = encode_captions(flow, [c.sentence for c in captions], progress)
    caption_video = np.array([column[c.video_id] for c in captions])
    video_frames = [frames[v] for v in video_ids]
    results = {p: evaluate_similarity(pooled_similarity(text, video_frames, p), caption_video) for p in POOLINGS}
    return Report(results, len(captions), len(video_ids), sum(len(f) for f in video_frames), hits, failed,
                  dataset.skipped + len(dataset.captions) - len(captions))


def _report(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


# ----------------------------------------------------------------------------- the CLI's `eval`


def format_table(report: Report) -> str:
    """Rows text->video and video->text for each pooling, columns R@1 R@5 R@10 MdR MnR."""
    names = {'text_to_video': 'text->video', 'video_to_text': 'video->text'}
    lines = [f"{'direction':<12} {'pooling':<7} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MdR':>6} {'MnR':>7}"]
    for direction in DIRECTIONS:
        for pooling in POOLINGS:
            m = report.results[pooling][direction]
            lines.append(f"{names[direction]:<12} {pooling:<7} {m['R@1']:>6.1f} {m['R@5']:>6.1f} {m['R@10']:>6.1f} "
                         f"{m['MdR']:>6.1f} {m['MnR']:>7.1f}")
    return '\n'.join(lines)


def _listed(names: list[str], shown: int = 5) -> str:
    more = f' and {len(names) - shown} more' if len(names) > shown else ''
    return ', '.join(names[:shown]) + more


def command(args) -> int:
    """`python flow.py eval`: print the metrics table (or JSON); warnings and progress go to stderr."""
    from tqdm import tqdm

    from flow import Flow

    if args.frames < 1:
        raise VcedError(f'--frames must be at least 1, not {args.frames}')
    dataset = load_dataset(args.videos, args.captions)
    if dataset.missing:
        print(f'warning: {len(dataset.missing)} videos not found in {args.videos}: {_listed(dataset.missing)}; '
              f'skipping their {dataset.skipped} captions', file=sys.stderr)
    overrides = {'workspace': args.workspace, 'model': args.model, 'strategy': args.strategy, 'count': args.frames}
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit='', file=sys.stderr, disable=None)
        bar.update(done - bar.n)

    try:
        with Flow(args.flow, **overrides) as flow:
            settings = flow_settings(flow)
            cache = FrameCache(Path(settings['with'].get('workspace') or 'data/workspace') / 'eval_cache', settings)
            report = evaluate_flow(flow, dataset, cache, progress)
    finally:
        for bar in bars.values():
            bar.close()
    if report.failed:
        print(f'warning: {len(report.failed)} videos could not be decoded, their captions are skipped: '
              f'{_listed(list(report.failed.values()), 3)}', file=sys.stderr)
    if args.json:
        print(json.dumps({'captions': report.captions, 'videos': report.videos, 'frames': report.frames,
                          'skipped_captions': report.skipped, 'missing_videos': dataset.missing,
                          'failed_videos': report.failed, 'cached_videos': report.cached,
                          'strategy': args.strategy, 'count': args.frames, 'results': report.results},
                         ensure_ascii=False))
    else:
        print(f'{report.captions} captions, {report.videos} videos, {report.frames} frames '
              f'({args.strategy}, {args.frames}); {report.skipped} captions skipped; '
              f'{report.cached} videos from the frame cache {cache.folder}')
        print(format_table(report))
    return 0
