"""The storage interface: what search and indexing need from a backend, and nothing more.

A backend stores, per video, its keyframe vectors (L2-normalised float32 in, any precision kept),
their timestamps and thumbnails, the shot cuts and the timed text (cues). The contract, checked for
every backend by tests/integration/test_storage_contract.py:

- `add` is atomic per video: after it returns True, `videos`, `find`, `frames`, `shots`, `cues`,
  `nearest`, `search_cues`, `nearest_cues` and `video_means` see all of the video; before (or after a crash
  mid-add) they see none of it. Adding a stored id returns False and changes nothing.
- `delete` removes every trace `add` made that search could return; it returns False for an
  unknown id.
- `frames(video_id)` returns the keyframes in time order; `nearest` returns frame indices into it.
- `search_cues` answers by one set of rules (executors/retrieval/cue_search.py) on every backend:
  the same query finds the same cues, spans and snippets.
- Other processes' committed adds and deletes become visible to a reader without reopening.
- The backend records which image tower made its vectors (`image_space`, the checkpoint's
  identity); `claim_image_space` refuses another one with a WorkspaceError naming both.
- Every failure a user can cause or fix (disk full, permissions, damaged files, a locked store)
  is a WorkspaceError with one line naming the file (or the server) and the reason.
"""
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from executors.documents import CueDoc


@dataclass(frozen=True)
class VideoRecord:
    """A stored video. `size` and `mtime_ns` are the file's when indexed (to skip re-hashing it)."""

    id: str
    path: str
    duration: float
    fps: float
    width: int
    height: int
    added: str = ''  # ISO time, set by the backend when empty
    frame_count: int = 0
    cue_count: int = 0
    size: int = 0
    mtime_ns: int = 0


@dataclass
class Frames:
    """A video's keyframes in time order: seconds, float32 unit vectors (one row each), thumbnail paths."""

    timestamps: np.ndarray
    vectors: np.ndarray
    thumbnails: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass(frozen=True)
class Neighbours:
    """Approximate nearest keyframes of a query, best first: owner, index into its frames, cosine."""

    video_ids: list[str]
    frames: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.video_ids)


@dataclass(frozen=True)
class ImageSpace:
    """Which image tower made a store's vectors: its checkpoint identity and the name it was given."""

    identity: str
    name: str = ''

    def describe(self) -> str:
        return f'{self.name} ({self.identity[:12]})' if self.name else self.identity[:12]


class Storage(ABC):
    """A library's videos, keyframe vectors, shots and cues; see the module docstring."""

    location: str  # the folder or server URI, for messages

    # ---------------------------------------------------------------- reading

    @abstractmethod
    def videos(self) -> list[VideoRecord]:
        """Every stored video, oldest first."""

    @abstractmethod
    def video(self, video_id: str) -> VideoRecord | None:
        """The stored video with exactly this id, or None."""

    @abstractmethod
    def find(self, video_id: str = '', path: str = '') -> list[VideoRecord]:
        """Videos whose id starts with `video_id` (lower-case hex), or whose path is `path`."""

    @abstractmethod
    def frames(self, video_id: str) -> Frames:
        """Every keyframe of a stored video; WorkspaceError when it is not stored or its vectors are damaged."""

    def keyframe_scores(self, video_id: str, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A video's keyframe times (seconds) and each keyframe's inner product with a unit `query`, in
        time order: what search needs of frames(), which a backend may answer without building them."""
        frames = self.frames(video_id)
        return frames.timestamps, frames.vectors @ query

    def keyframe_times(self, video_id: str) -> np.ndarray:
        """A video's keyframe times (seconds, ascending): what a spoken result needs to show the keyframe
        on screen, which a backend may answer without reading the keyframes."""
        return self.frames(video_id).timestamps

    def thumbnail(self, video_id: str, index: int) -> str:
        """The thumbnail of a video's keyframe `index` (time order); '' when it has none."""
        thumbnails = self.frames(video_id).thumbnails
        return thumbnails[index] if thumbnails else ''

    @abstractmethod
    def shots(self, video_id: str) -> list[float]:
        """A video's shot-cut times, ascending."""

    @abstractmethod
    def cues(self, video_id: str) -> list[CueDoc]:
        """A video's timed text, in time order."""

    @abstractmethod
    def video_means(self) -> tuple[list[str], np.ndarray]:
        """Every video's id and L2-normalised mean keyframe vector (CLIP4Clip's meanP)."""

    @abstractmethod
    def nearest(self, query: np.ndarray, k: int) -> Neighbours:
        """About the `k` keyframes nearest to a unit `query` (inner product), best first."""

    def nearest_many(self, queries: np.ndarray, k: int, near: bool = False) -> list[Neighbours]:
        """nearest() of each row of `queries`; a backend may answer them in one call. `near`: only keyframes
        that are nearly the same picture (cosine >= ~0.8: copies) are wanted, so an index may search less widely."""
        return [self.nearest(query, k) for query in queries]

    @abstractmethod
    def search_cues(self, text: str, limit: int) -> list:
        """Search over what is said: at most `limit` CueHit, best first, ranked by
        executors.retrieval.cue_search.search over the candidates this backend fetches."""

    @abstractmethod
    def screen_counts(self) -> dict[str, int]:
        """{video id: number of its on-screen text cues} for the stored videos that have any."""

    @abstractmethod
    def nearest_cues(self, query: np.ndarray, k: int) -> list:
        """About the `k` cues whose stored text embeddings are nearest a unit `query` (inner product), best
        first, as (executors.retrieval.cue_search.CueRow, cosine) pairs; cues stored without one never."""

    @abstractmethod
    def image_space(self) -> ImageSpace | None:
        """The image tower the stored vectors came from; None while nothing is stored."""

    # ---------------------------------------------------------------- writing

    @abstractmethod
    def add(self, video: VideoRecord, frames: Frames, shots: list[float], cues: list[CueDoc],
            space: ImageSpace) -> bool:
        """Store a video atomically; False (and no change) when its id is already stored."""

    @abstractmethod
    def delete(self, video_id: str) -> bool:
        """Remove a video and everything stored with it; False when it is not stored."""

    def save(self) -> None:
        """Persist derived state (such as an index graph) after a batch of writes."""

    def preload(self) -> None:
        """Read ahead what searches need (a long-lived process starting), where that makes them faster."""

    @abstractmethod
    def close(self) -> None:
        """Persist and release everything."""
