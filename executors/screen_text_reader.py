"""ScreenTextReader: the text a video shows (burned-in subtitles, slides, signs, tickers) as timed cues."""
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from executors.base import Executor, requests
from executors.documents import SCREEN, CueDoc, DocList, Status, VideoDoc
from executors.errors import ConfigError, VideoError
from executors.media.ffmpeg_binary import find_ffmpeg
from executors.media.near_duplicates import NearDuplicates, thumbnail
from executors.media.overlays import Edges, steady, still_shown
from executors.media.screen_cues import CueTracker
from executors.media.sharp_frames import frame_size, sharp_frames
from executors.models.ocr import TextLine, TextReader, ocr_models
from executors.retrieval.cue_search import CJK_RUN

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 64  # the change test's thumbnail: a new subtitle line changes a few cells of it
PAD = 8  # pixels read around a changed region
MARGIN = 32  # black pixels around a region the detector reads (without, it missed lines a small crop held whole)
STEADY_SHARE = 0.1  # a cell with this share of steady edge pixels may hold an overlay (a line's cells: 0.15-0.9)


@dataclass
class Keyframe:
    """A keyframe decoded to be read: its time (s), its place among the video's keyframes, the thumbnail cells
    that changed since the last one read (None: read it whole), its pixels and their edges."""

    time: float
    index: int
    changed: np.ndarray | None
    rgb: np.ndarray
    edges: Edges


@dataclass
class Reading:
    """A video being read, piece by piece: which keyframes changed, what is on screen, and the cues so far."""

    changes: NearDuplicates
    tracker: CueTracker = field(default_factory=CueTracker)
    lines: list[TextLine] = field(default_factory=list)  # what the last keyframe read showed
    looks: list[Edges] = field(default_factory=list)  # each line's pixels when it was last seen in place
    waiting: Keyframe | None = None  # decoded; read once the keyframe after it is known
    steady_before: np.ndarray | None = None  # the edges the waiting keyframe shares with the one before it
    last_time: float = 0.0
    failed: bool = False


class ScreenTextReader(Executor):
    """Adds each loaded video's on-screen text to its `cues` (source 'screen').

    Args:
        ocr: 'auto' (the PP-OCRv4 Chinese + English models inside rapidocr-onnxruntime), 'off', or
            a folder with one *det*.onnx and one *rec*.onnx (CLI: --ocr).
        changed_above: a keyframe is read only when some cell of its 64 x 64 grey thumbnail differs by
            this many grey levels (0-255) from the last keyframe read (the near-duplicate check the
            ImageEncoder uses, by the largest cell instead of the mean); 0 reads every keyframe.
        min_score: lines recognised with less confidence (0-1) are dropped.
        longest: keyframes are decoded again with their longer side at most this many pixels.
        side: the text detector sees them with the longer side at most this many pixels.
        threads: CPU threads for recognition.
        max_chars: a scrolling line (ticker) is one cue until it holds this many characters.
        ffmpeg: as VideoLoader's (auto | bundled | system | a path).
    """

    background = True

    def __init__(self, ocr: str = 'auto', changed_above: float = 8.0, min_score: float = 0.8, longest: int = 1920,
                 side: int = 960, threads: int = 2, max_chars: int = 300, ffmpeg: str = 'auto'):
        if not 0 <= min_score <= 1 or changed_above < 0 or threads < 1 or max_chars < 20:
            raise ConfigError('min_score must be 0-1, changed_above >= 0, threads >= 1 and max_chars >= 20, not '
                              f'{min_score}, {changed_above}, {threads}, {max_chars}')
        if not 32 <= side <= 4096 or not 32 <= longest <= 8192:
            raise ConfigError(f'side and longest must be 32-4096 and 32-8192 pixels, not {side} and {longest}')
        self.models = ocr_models(ocr)
        self.changed_above, self.min_score, self.longest = float(changed_above), float(min_score), int(longest)
        self.side, self.threads, self.max_chars = int(side), int(threads), int(max_chars)
        self.ffmpeg = find_ffmpeg(str(ffmpeg)) if self.models else None
        self._reader: TextReader | None = None
        self._reading: dict[str, Reading] = {}  # videos arriving in pieces, by uri

    @requests(on='/index')
    def index(self, docs: DocList[VideoDoc]) -> DocList[VideoDoc]:
        """Read the changed keyframes of each piece; add the video's screen cues to its last piece."""
        if self.models is None:
            return docs
        for doc in docs:
            if doc.status != Status.PENDING or not doc.video_id:
                self._reading.pop(doc.uri, None)
                continue
            reading = self._reading.setdefault(doc.uri, Reading(NearDuplicates(self.changed_above, THUMBNAIL_SIDE, 'max'),
                                                                CueTracker(self.max_chars)))
            self.read_piece(doc, reading)
            if doc.last_chunk:
                del self._reading[doc.uri]
                if not reading.failed:
                    self.read_waiting(reading, None)
                doc.cues.extend(screen_cues(doc, reading))
        return docs

    def read_piece(self, doc: VideoDoc, reading: Reading) -> None:
        """Decode the piece's keyframes that changed since the last one read; each is read once the next is known."""
        picked = []
        for frame in doc.frames:
            index = reading.changes.count
            if frame.tensor is None or reading.changes.source(frame.tensor) == index:
                picked.append((float(frame.timestamp), index,
                               reading.changes.changed if frame.tensor is not None else None))
        if doc.frames:
            reading.last_time = float(doc.frames[-1].timestamp)
        if not picked or reading.failed:
            return
        size = frame_size(doc.width or 1, doc.height or 1, self.longest)
        try:
            decoded = sharp_frames(Path(doc.uri), [time for time, _, _ in picked], size, self.ffmpeg)
            for (time, index, changed), rgb in zip(picked, decoded):
                self.read_waiting(reading, Keyframe(time, index, changed, rgb, Edges.of(rgb)))
        except VideoError as e:
            log.warning('%s (its on-screen text is not read)', e)
            reading.failed = True

    def read_waiting(self, reading: Reading, following: Keyframe | None) -> None:
        """Read the keyframe waiting for `following`, the next one decoded (None: there is none), which then waits.

        A line on screen stays at least two keyframes, so new text is looked for where the waiting keyframe's
        edges are steady with the next one's and were not with the one before (those were looked at then).
        Where the next one was not decoded (it was unchanged, or there is none) every changed cell is read.
        """
        keyframe, reading.waiting = reading.waiting, following
        if keyframe is None:
            return
        consecutive = following is not None and following.index == keyframe.index + 1
        steady_after = steady(keyframe.edges, following.edges) if consecutive else None  # else it stays, or ends
        appeared = steady_after
        if steady_after is not None and reading.steady_before is not None:
            appeared = steady_after & ~reading.steady_before
        reading.steady_before = steady_after
        reading.lines, reading.looks = self.read_keyframe(keyframe, appeared, reading.lines, reading.looks)
        reading.tracker.see(keyframe.time, reading.lines)

    def read_keyframe(self, keyframe: Keyframe, appeared: np.ndarray | None, before: list[TextLine],
                      looks: list[Edges]) -> tuple[list[TextLine], list[Edges]]:
        """The lines of a keyframe and their pixels: the lines of `before` still in place, and what is read where
        it changed since the last keyframe read and has `appeared` pixels, steady edges new to it (None: everywhere
        it changed); the whole keyframe when no cells are known or most of it changed."""
        shape = keyframe.rgb.shape[:2]
        places = [_pixels(line.box, shape) for line in before]
        shown = [still_shown(look, keyframe.edges.crop(place)) for look, place in zip(looks, places)]
        regions = None
        if keyframe.changed is not None:
            new = np.ones(shape, bool) if appeared is None else appeared.copy()
            for place, still in zip(places, shown):
                if still:  # a line in place is not looked for again
                    new[max(0, place[0] - PAD):place[1] + PAD, max(0, place[2] - PAD):place[3] + PAD] = False
            candidates = keyframe.changed & (thumbnail(new.view(np.uint8), keyframe.changed.shape[0]) >= STEADY_SHARE)
            if appeared is not None:
                candidates = _in_rows(candidates)
            regions = changed_regions(candidates, shape, [line.box for line in before])
        if regions is None:
            found = self.reader().read(keyframe.rgb)
            return found, [keyframe.edges.crop(_pixels(line.box, shape)) for line in found]
        lines = [line for line, still in zip(before, shown) if still and not any(_meets(line.box, r) for r in regions)]
        for top, bottom, left, right in regions:
            lines += [TextLine(line.text, line.score, (line.box[0] + left - MARGIN, line.box[1] + top - MARGIN,
                                                       line.box[2] + left - MARGIN, line.box[3] + top - MARGIN))
                      for line in self.reader().read(framed(keyframe.rgb[top:bottom, left:right]))]
        lines.sort(key=lambda line: (line.box[1], line.box[0]))
        return lines, [keyframe.edges.crop(_pixels(line.box, shape)) for line in lines]

    def reader(self) -> TextReader:
        if self._reader is None:
            self._reader = TextReader(self.models, self.threads, self.side, self.min_score)
        return self._reader


def changed_regions(changed: np.ndarray | None, shape: tuple[int, int], boxes: list[tuple],
                    largest: float = 0.6) -> list[tuple[int, int, int, int]] | None:
    """(top, bottom, left, right) pixel regions of a picture of `shape` around its groups of changed thumbnail
    cells (a band of rows, split where columns are empty), each a cell and PAD pixels wider on every side and
    grown over every box of `boxes` it meets (a line is read whole), regions that meet joined; None when no
    cells are known or the regions cover more than `largest` of the picture."""
    if changed is None:
        return None
    height, width = shape
    cell_height, cell_width = height / changed.shape[0], width / changed.shape[1]
    regions = [[(r0 - 1) * cell_height - PAD, (r1 + 2) * cell_height + PAD,
                (c0 - 1) * cell_width - PAD, (c1 + 2) * cell_width + PAD]
               for r0, r1 in _runs(changed.any(axis=1), 1) for c0, c1 in _runs(changed[r0:r1 + 1].any(axis=0), 2)]
    regions = _joined([_grown(region, boxes) for region in regions], boxes)
    regions = [(max(0, int(top)), min(height, int(np.ceil(bottom))), max(0, int(left)), min(width, int(np.ceil(right))))
               for top, bottom, left, right in regions]
    return None if sum((b - t) * (r - l) for t, b, l, r in regions) > largest * height * width else regions


def framed(rgb: np.ndarray) -> np.ndarray:
    """The picture inside a black frame MARGIN pixels wide."""
    return np.pad(rgb, ((MARGIN, MARGIN), (MARGIN, MARGIN), (0, 0)))


def _in_rows(cells: np.ndarray) -> np.ndarray:
    """The cells with a neighbour left or right (a line of text spans cells side by side; a lone cell is the
    picture's own steady edge)."""
    beside = np.zeros_like(cells)
    beside[:, 1:] |= cells[:, :-1]
    beside[:, :-1] |= cells[:, 1:]
    return cells & beside


def _runs(flags: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """(first, last) of each run of True in `flags`, runs with at most `gap` False between them joined."""
    found = np.flatnonzero(flags)
    if not found.size:
        return []
    breaks = np.flatnonzero(np.diff(found) > gap + 1)
    return list(zip(np.r_[found[0], found[breaks + 1]].tolist(), np.r_[found[breaks], found[-1]].tolist()))


def _grown(region: list[float], boxes: list[tuple]) -> list[float]:
    for _ in range(3):  # a box that grows the region may meet another
        for box in boxes:
            if _meets(box, region):
                region = [min(region[0], box[1] - PAD), max(region[1], box[3] + PAD),
                          min(region[2], box[0] - PAD), max(region[3], box[2] + PAD)]
    return region


def _joined(regions: list[list[float]], boxes: list[tuple]) -> list[list[float]]:
    """Regions that overlap made one (grown again over the boxes), until none overlap."""
    while True:
        pair = next(((i, j) for i in range(len(regions)) for j in range(i + 1, len(regions))
                     if _meets((regions[j][2], regions[j][0], regions[j][3], regions[j][1]), regions[i])), None)
        if pair is None:
            return regions
        a, b = regions[pair[0]], regions.pop(pair[1])
        regions[pair[0]] = _grown([min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])], boxes)


def _meets(box: tuple, region) -> bool:
    """Whether a (left, top, right, bottom) box and a (top, bottom, left, right) region overlap."""
    return box[0] < region[3] and region[2] < box[2] and box[1] < region[1] and region[0] < box[3]


def _pixels(box: tuple, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The (top, bottom, left, right) pixel region of a (left, top, right, bottom) box inside a picture of `shape`."""
    return (max(0, int(box[1])), min(shape[0], int(np.ceil(box[3]))),
            max(0, int(box[0])), min(shape[1], int(np.ceil(box[2]))))


def screen_cues(doc: VideoDoc, reading: Reading) -> list[CueDoc]:
    """The video's screen cues (none when reading failed); what is on screen at the end lasts to the video's end."""
    if reading.failed:
        return []
    end = max(float(doc.duration), reading.last_time)
    return [CueDoc(video_id=doc.video_id, start=cue.start, end=cue.end, text=cue.text, source=SCREEN,
                   language=language(cue.text)) for cue in reading.tracker.finish(end)]


def language(text: str) -> str:
    """'zh' for text with Chinese characters, 'en' for Latin letters only, else '' (the models read these two)."""
    if CJK_RUN.search(text):
        return 'zh'
    return 'en' if any('a' <= ch.lower() <= 'z' for ch in text) else ''

