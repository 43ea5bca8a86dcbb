"""ScreenTextReader: the text a video shows (burned-in subtitles, slides, signs, tickers) as timed cues."""
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from executors.base import Executor, requests
from executors.documents import SCREEN, CueDoc, DocList, Status, VideoDoc
from executors.errors import ConfigError, VideoError
from executors.media.ffmpeg_binary import find_ffmpeg
from executors.media.near_duplicates import NearDuplicates
from executors.media.screen_cues import CueTracker
from executors.media.sharp_frames import frame_size, sharp_frames
from executors.models.ocr import TextLine, TextReader, ocr_models
from executors.retrieval.cue_search import CJK_RUN

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 64  # the change test's thumbnail: a new subtitle line changes a few cells of it
PAD = 8  # pixels read around a changed region


@dataclass
class Reading:
    """A video being read, piece by piece: which keyframes changed, and the cues so far."""

    changes: NearDuplicates
    tracker: CueTracker = field(default_factory=CueTracker)
    lines: list[TextLine] = field(default_factory=list)  # what the last keyframe read showed
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
                doc.cues.extend(screen_cues(doc, reading))
        return docs

    def read_piece(self, doc: VideoDoc, reading: Reading) -> None:
        """Read the text of the piece's keyframes that changed since the last one read, where they changed."""
        times, cells = [], []
        for frame in doc.frames:
            index = reading.changes.count
            if frame.tensor is None or reading.changes.source(frame.tensor) == index:
                times.append(float(frame.timestamp))
                cells.append(reading.changes.changed if frame.tensor is not None else None)
        if doc.frames:
            reading.last_time = float(doc.frames[-1].timestamp)
        if not times or reading.failed:
            return
        size = frame_size(doc.width or 1, doc.height or 1, self.longest)
        try:
            for time, changed, rgb in zip(times, cells, sharp_frames(Path(doc.uri), times, size, self.ffmpeg)):
                reading.lines = self.read_changed(rgb, changed, reading.lines)
                reading.tracker.see(time, reading.lines)
        except VideoError as e:
            log.warning('%s (its on-screen text is not read)', e)
            reading.failed = True

    def read_changed(self, rgb: np.ndarray, changed: np.ndarray | None, before: list[TextLine]) -> list[TextLine]:
        """The lines of a keyframe: read again inside the region that changed, kept from `before` outside it
        (the whole keyframe when no cells are known or most of it changed)."""
        region = changed_region(changed, rgb.shape[:2], [line.box for line in before])
        if region is None:
            return self.reader().read(rgb)
        top, bottom, left, right = region
        kept = [line for line in before if not _meets(line.box, region)]
        found = [TextLine(line.text, line.score, (line.box[0] + left, line.box[1] + top, line.box[2] + left,
                                                  line.box[3] + top))
                 for line in self.reader().read(rgb[top:bottom, left:right])]
        return sorted(kept + found, key=lambda line: (line.box[1], line.box[0]))

    def reader(self) -> TextReader:
        if self._reader is None:
            self._reader = TextReader(self.models, self.threads, self.side, self.min_score)
        return self._reader


def changed_region(changed: np.ndarray | None, shape: tuple[int, int], boxes: list[tuple],
                   largest: float = 0.6) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) in pixels of a picture of `shape` around its changed thumbnail cells, a cell
    and PAD pixels wider on each side and grown over every box of `boxes` it meets (a line is read whole);
    None when no cells are known or the region covers more than `largest` of the picture."""
    if changed is None or not changed.any():
        return None
    height, width = shape
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    cell_height, cell_width = height / changed.shape[0], width / changed.shape[1]
    region = [(rows[0] - 1) * cell_height - PAD, (rows[-1] + 2) * cell_height + PAD,
              (cols[0] - 1) * cell_width - PAD, (cols[-1] + 2) * cell_width + PAD]
    for _ in range(3):  # a box that grows the region may meet another
        for box in boxes:
            if _meets(box, region):
                region = [min(region[0], box[1] - PAD), max(region[1], box[3] + PAD),
                          min(region[2], box[0] - PAD), max(region[3], box[2] + PAD)]
    top, bottom = max(0, int(region[0])), min(height, int(np.ceil(region[1])))
    left, right = max(0, int(region[2])), min(width, int(np.ceil(region[3])))
    return None if (bottom - top) * (right - left) > largest * height * width else (top, bottom, left, right)


def _meets(box: tuple, region) -> bool:
    """Whether a (left, top, right, bottom) box and a (top, bottom, left, right) region overlap."""
    return box[0] < region[3] and region[2] < box[2] and box[1] < region[1] and region[0] < box[3]


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

