"""SpeechReader: the timed text of each loaded video, from its subtitles or, lacking any, its speech."""
import logging
import re
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

from executors.base import Executor, requests
from executors.documents import CueDoc, DocList, FrameDoc, Status, VideoDoc
from executors.notices import notice_once
from executors.errors import ConfigError, first_line
from executors.models.whisper import OFF, WEIGHTS_DIR, Recognizer, SpeechError, SpeechModelError, model_for
from executors.media.subtitles import has_audio, subtitle_cues

log = logging.getLogger(__name__)


class SpeechReader(Executor):
    """Fills each loaded video's `cues`: sidecar subtitle files, else text subtitle streams, else speech.

    Args:
        asr: the speech model: a faster-whisper name ('tiny', 'base', 'small', ...; downloaded once
            into `weights`/faster-whisper-<name>/), a local model folder, or 'off' (subtitles only).
        device: 'auto' (CUDA with float16 when CTranslate2 sees a GPU, else CPU with int8), 'cpu' or 'cuda'.
        threads: CPU threads for recognition; 0 lets CTranslate2 choose.
        weights: the folder named models are downloaded into ('' = the repository's weights/).
        beam_size: beams searched per 30 s window; 1 (greedy) is about twice as fast, a little less accurate.
        chunk_seconds: audio recognised at a time; memory is 64 kB per second of it.
    """

    def __init__(self, asr: str = 'base', device: str = 'auto', threads: int = 2, weights: str = '',
                 beam_size: int = 5, chunk_seconds: float = 600.0):
        if threads < 0:
            raise ConfigError(f'threads must be 0 (CTranslate2 chooses) or more, not {threads}')
        if beam_size < 1 or chunk_seconds < 30:
            raise ConfigError(f'beam_size must be 1 or more and chunk_seconds 30 or more, not {beam_size}, {chunk_seconds}')
        if not re.fullmatch(r'auto|cpu|cuda(:\d+)?', device):
            raise ConfigError(f'device must be auto, cpu, cuda or cuda:N, not {device!r}')
        self.asr = '' if str(asr).strip().lower() in OFF else str(asr).strip()
        self.device, self.threads, self.weights = device, int(threads), weights or str(WEIGHTS_DIR)
        self.beam_size, self.chunk_seconds = int(beam_size), float(chunk_seconds)
        self._reading: dict[str, Future] = {}  # a video's cues being read, by uri, until its last piece
        self._pool: ThreadPoolExecutor | None = None

    @requests(on='/index')
    def index(self, docs: DocList[VideoDoc], parameters: dict) -> DocList[VideoDoc] | Iterator[DocList[VideoDoc]]:
        """Start reading a video's cues with its first piece (in a thread of its own, so recognition runs
        while the video's keyframes are read and encoded); attach them to its last piece.

        A last piece whose cues are still being read does not wait here: its keyframes go on at once as one
        more piece, and the cues follow in a last piece without keyframes. The executors after this one
        then work on a video of one piece (most videos: shorter than the loader's chunk_frames) while its
        speech is recognised, instead of after."""
        unread: dict[int, Future] = {}  # by id() of the last piece
        for doc in docs:
            if doc.status != Status.PENDING or not doc.video_id:
                self._reading.pop(doc.uri, None)  # failed or already indexed: its cues are not wanted
                continue
            if doc.uri not in self._reading:
                video = VideoDoc(uri=doc.uri, video_id=doc.video_id, duration=doc.duration)
                self._reading[doc.uri] = self._worker().submit(read_cues, video, self.recognizer,
                                                               parameters.get('progress'))
            if doc.last_chunk:
                reading = self._reading.pop(doc.uri)
                if reading.done() or not len(doc.frames):
                    _attach_cues(doc, reading)
                else:
                    unread[id(doc)] = reading
        return _cues_after_keyframes(docs, unread) if unread else docs

    def _worker(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix='speech')
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def recognizer(self) -> Recognizer | None:
        """The Recognizer of `asr`, or None when it is off or its model is missing (said once per process)."""
        if not self.asr:
            return None
        try:
            return Recognizer(model_for(self.asr, self.weights, self.device, self.threads),
                              self.beam_size, self.chunk_seconds)
        except SpeechModelError as e:
            notice_once(log, f'{e}; indexing goes on without speech recognition')
            return None


def _cues_after_keyframes(docs: DocList[VideoDoc], unread: dict[int, Future]) -> Iterator[DocList[VideoDoc]]:
    """`docs` with the keyframes of each last piece in `unread` handed on as a piece of their own; then those
    last pieces, without keyframes, once their cues are read."""
    yield DocList[VideoDoc]([doc.model_copy(update={'shots': [], 'last_chunk': False}) if id(doc) in unread else doc
                             for doc in docs])
    waited = DocList[VideoDoc]([doc for doc in docs if id(doc) in unread])
    for doc in waited:
        doc.frames = DocList[FrameDoc]()
        _attach_cues(doc, unread[id(doc)])
    yield waited


def _attach_cues(doc: VideoDoc, reading: Future) -> None:
    """The cues read for `doc`; a file that breaks the reading in an unforeseen way fails alone, never the batch."""
    try:
        doc.cues = DocList[CueDoc](reading.result())
    except Exception as e:  # noqa: BLE001 - one hostile file must not stop the others; its reason is reported
        log.debug('reading the cues of %s failed', doc.uri, exc_info=True)
        doc.status, doc.error = Status.FAILED, f'{Path(doc.uri).name}: cannot read its subtitles or speech ({first_line(e)})'


def read_cues(doc: VideoDoc, recognizer: Callable[[], Recognizer | None],
              progress: Callable | None = None) -> list[CueDoc]:
    """A video's cues by preference: sidecar files > text subtitle streams > speech (only without subtitles).

    `recognizer` is called only when speech is needed. Unreadable subtitles and undecodable audio
    log a warning and give fewer (or no) cues: the video is still indexed by what it shows.
    """
    path = Path(doc.uri)
    cues = subtitle_cues(path, doc.video_id)
    if cues or not has_audio(path):
        return cues
    speech = recognizer()
    if speech is None:
        return []
    report = (lambda done, total: progress(doc, 'speech', int(done), int(total))) if progress else None
    try:
        return speech.recognise(path, doc.video_id, report, doc.duration)
    except SpeechError as e:
        log.warning('%s (no speech cues)', e)
        return []
