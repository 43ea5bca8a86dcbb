"""Training pairs from a captioned video set, and the videos' frames: embedded once (cached) or decoded."""
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation import Dataset, normalize
from executors.errors import VcedError
from executors.media.frame_reader import FrameReader
from executors.media.sampling import Sampling
from executors.media.probe import probe


@dataclass
class Pairs:
    """One row per caption: its sentence and its video's column; which videos each caption describes."""

    sentences: list[str]
    video: np.ndarray        # pairs: column of the caption's own video
    video_ids: list[str]     # columns
    positives: np.ndarray    # pairs x videos bool: the caption's sentence is one of that video's captions

    @classmethod
    def from_dataset(cls, dataset: Dataset, keep: set[str] | None = None, role: str = 'train on') -> 'Pairs':
        captions = [c for c in dataset.captions if keep is None or c.video_id in keep]
        if not captions:
            raise VcedError(f'no captioned video to {role}')
        video_ids = list(dict.fromkeys(c.video_id for c in captions))
        column = {v: j for j, v in enumerate(video_ids)}
        said: dict[str, set[int]] = {}
        for c in captions:
            said.setdefault(_key(c.sentence), set()).add(column[c.video_id])
        positives = np.zeros((len(captions), len(video_ids)), dtype=bool)
        for i, c in enumerate(captions):
            positives[i, list(said[_key(c.sentence)])] = True
        return cls([c.sentence for c in captions], np.array([column[c.video_id] for c in captions]),
                   video_ids, positives)

    def batch_positives(self, rows: np.ndarray) -> np.ndarray:
        """rows x rows: caption rows[a] describes the video of pair rows[b]."""
        return self.positives[rows][:, self.video[rows]]

    def __len__(self) -> int:
        return len(self.sentences)


def _key(sentence: str) -> str:
    return ' '.join(sentence.lower().split())


def mean_pooled(frames: list[np.ndarray]) -> np.ndarray:
    """Videos x dim: CLIP4Clip's meanP of each video's normalised frame embeddings, renormalised."""
    return normalize(np.stack([normalize(f).mean(axis=0) for f in frames])).astype(np.float32)


MIN_VALIDATION = 10  # videos: R@1 on fewer moves in steps of 10 points or more, too coarse to stop on
AUTO_HOLDOUT = 0.1   # the share held out when the set has enough videos for MIN_VALIDATION of them


def split_videos(video_ids: list[str], holdout: float | None, seed: int) -> tuple[set[str], set[str], str]:
    """(train, validation, warning) video ids chosen by `seed`. `holdout` None: AUTO_HOLDOUT of them when
    that makes MIN_VALIDATION videos, else none (a small set is better trained on whole, for a fixed
    number of epochs); 0: none. An explicit share that leaves fewer than two videos to validate on (R@1
    over one video is always 100) holds none out either; one that leaves fewer than MIN_VALIDATION warns."""
    total = len(video_ids)
    held = int(round((AUTO_HOLDOUT if holdout is None else holdout) * total))
    everything = (set(video_ids), set(), '')
    if holdout == 0:
        return everything
    if holdout is None and held < MIN_VALIDATION or held < 2 or total - held < 2:
        asked = f'--holdout {holdout}' if holdout is not None else f'holding out {AUTO_HOLDOUT:g} of them'
        return (*everything[:2], f'{total} videos are too few to validate on: {asked} would leave {held} '
                f'(R@1 needs {MIN_VALIDATION} or more to mean much); training on all of them for every epoch, '
                'without early stopping: measure the result with eval on videos it has not seen, or give --val')
    order = np.random.default_rng(seed).permutation(total)
    held_out = {video_ids[i] for i in order[:held]}
    warning = (f'validating on only {held} videos: R@1 moves in steps of {100 / held:.0f} points, so early '
               'stopping may stop on noise (give --val, or more videos)' if held < MIN_VALIDATION else '')
    return set(video_ids) - held_out, held_out, warning


class DecodedFrames:
    """Each video's `count` evenly spaced frames at the model's input size (uint8, frames x H x W x 3),
    decoded once by the loader's own reader and kept as .npy files under `folder`."""

    def __init__(self, folder: Path, count: int, size: int):
        self.folder, self.count, self.size = Path(folder), count, size

    def get(self, path: Path) -> np.ndarray:
        key = hashlib.sha256(f'{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}'.encode()).hexdigest()
        target = self.folder / f'{key[:24]}-{self.count}-{self.size}.npy'
        if target.exists():
            return np.load(target, mmap_mode='r')
        with FrameReader(path, probe(path), Sampling(strategy='count', count=self.count), self.size) as reader:
            frames = np.stack([rgb for _, rgb in reader])
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix('.partial.npy')
        np.save(partial, frames, allow_pickle=False)
        partial.replace(target)
        return frames
