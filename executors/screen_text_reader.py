"""ScreenTextReader: the text a video shows (burned-in subtitles, slides, signs, tickers) as timed cues."""
import logging
from dataclasses import dataclass, field
from pathlib import Path

from executors.base import Executor, requests
from executors.documents import SCREEN, CueDoc, DocList, Status, VideoDoc
from executors.errors import ConfigError, VideoError
from executors.media.ffmpeg_binary import find_ffmpeg
from executors.media.near_duplicates import NearDuplicates
from executors.media.screen_cues import CueTracker
from executors.media.sharp_frames import frame_size, sharp_frames
from executors.models.ocr import TextReader, ocr_models
from executors.retrieval.cue_search import CJK_RUN

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 64  # the change test's thumbnail: a new subtitle line changes a few cells of it


@dataclass
class Reading:
    """A video being read, piece by piece: which keyframes changed, and the cues so far."""

    changes: NearDuplicates
    tracker: CueTracker = field(default_factory=CueTracker)
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
        """Read the text of the piece's keyframes that changed since the last one read."""
        times = []
        for frame in doc.frames:
            index = reading.changes.count
            if frame.tensor is None or reading.changes.source(frame.tensor) == index:
                times.append(float(frame.timestamp))
        if doc.frames:
            reading.last_time = float(doc.frames[-1].timestamp)
        if not times or reading.failed:
            return
        size = frame_size(doc.width or 1, doc.height or 1, self.longest)
        try:
            for time, rgb in zip(times, sharp_frames(Path(doc.uri), times, size, self.ffmpeg)):
                reading.tracker.see(time, self.reader().read(rgb))
        except VideoError as e:
            log.warning('%s (its on-screen text is not read)', e)
            reading.failed = True

    def reader(self) -> TextReader:
        if self._reader is None:
            self._reader = TextReader(self.models, self.threads, self.side, self.min_score)
        return self._reader


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

