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


def split_videos(video_ids: list[str], fraction: float, seed: int) -> tuple[set[str], set[str]]:
    """(train, validation) video ids: `fraction` of them held out, at least one, chosen by `seed`."""
    order = np.random.default_rng(seed).permutation(len(video_ids))
    held = max(1, int(round(fraction * len(video_ids))))
    if len(video_ids) < 2:
        raise VcedError('need at least two videos to hold one out for validation (or give --val)')
    held_out = {video_ids[i] for i in order[:held]}
    return set(video_ids) - held_out, held_out


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
