"""Text in pictures: PP-OCR detection and recognition (Chinese and English) on ONNX Runtime, through RapidOCR.

`auto` uses the models that the rapidocr-onnxruntime wheel ships (PP-OCRv4 det and rec, Apache-2.0,
from PaddleOCR): nothing is downloaded, ever. A folder holding one `*det*.onnx` and one `*rec*.onnx`
(and, for a recogniser without its alphabet inside, a `*.txt` of its characters) replaces them.
"""
import functools
import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from executors.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

AUTO, OFF = 'auto', ('off', 'none', 'false', '0', '')
LATIN_RUN = re.compile(r'[A-Za-z]{9,}')  # a run this long may be words the recogniser joined


@dataclass(frozen=True)
class TextLine:
    """A line of text found in a picture: its words, the recogniser's confidence (0-1) and its box
    (left, top, right, bottom, in the picture's pixels)."""

    text: str
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class OcrModels:
    """The model files of one OCR setting: detection, recognition and (optional) the recogniser's alphabet."""

    det: str = ''  # '' = the wheel's own
    rec: str = ''
    keys: str = ''

    def describe(self) -> str:
        return f'{Path(self.det).name} + {Path(self.rec).name}' if self.det else 'PP-OCRv4 (rapidocr-onnxruntime)'


def ocr_models(setting: str) -> OcrModels | None:
    """The models `ocr: auto | off | PATH` names; None for off. ConfigError for a folder without them."""
    value = str(setting).strip()
    if value.lower() in OFF:
        return None
    if value.lower() == AUTO:
        return OcrModels()
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"ocr: {value}: not a folder of OCR models (or 'auto', 'off')")
    found = {kind: sorted(folder.glob(f'*{kind}*.onnx')) for kind in ('det', 'rec')}
    if len(found['det']) != 1 or len(found['rec']) != 1:
        raise ConfigError(f'ocr: {value}: needs one *det*.onnx and one *rec*.onnx '
                          f"(found {len(found['det'])} and {len(found['rec'])})")
    keys = sorted(folder.glob('*.txt'))
    return OcrModels(str(found['det'][0]), str(found['rec'][0]), str(keys[0]) if keys else '')


class TextReader:
    """Reads the lines of text in RGB pictures; one ONNX Runtime session pair per (models, threads, side).

    side: the detector sees the picture with its longer side at most this many pixels (smaller is
    faster; text lower than ~12 px after that scaling is missed). min_score: lines the recogniser
    is less sure of are dropped.
    """

    def __init__(self, models: OcrModels, threads: int = 2, side: int = 960, min_score: float = 0.8):
        self.engine = _engine(models, int(threads), int(side))
        self.min_score = float(min_score)
        self._lock = threading.Lock()  # one picture at a time per engine (its sessions keep state between calls)

    def read(self, rgb: np.ndarray) -> list[TextLine]:
        """The confident lines of an RGB uint8 picture, top to bottom, spaced where the recogniser joined words;
        lines without a letter (clocks, counters, scores: a new cue every second) are left out."""
        with self._lock:
            found, _ = self.engine(np.ascontiguousarray(rgb[..., ::-1]), use_cls=False, text_score=self.min_score)
        lines = []
        for points, text, score in found or ():
            text = spaced(' '.join(str(text).split()))
            if sum(ch.isalnum() for ch in text) >= 2 and any(ch.isalpha() for ch in text):  # not a clock or counter
                xs, ys = [p[0] for p in points], [p[1] for p in points]
                lines.append(TextLine(text, float(score), (min(xs), min(ys), max(xs), max(ys))))
        return joined_lines(lines)


def joined_lines(lines: list[TextLine]) -> list[TextLine]:
    """Boxes the detector cut out of one line of text (side by side in a band, closer than 1.5 line
    heights) joined into one line, words in reading order; lines top to bottom."""
    rows: list[list[TextLine]] = []
    for line in sorted(lines, key=lambda line: line.box[0]):
        row = next((row for row in rows if _same_row(row[-1].box, line.box)), None)
        if row is None:
            rows.append([line])
        else:
            row.append(line)
    joined = [TextLine(' '.join(part.text for part in row), min(part.score for part in row),
                       (row[0].box[0], min(p.box[1] for p in row), row[-1].box[2], max(p.box[3] for p in row)))
              for row in rows]
    return sorted(joined, key=lambda line: (line.box[1], line.box[0]))


def _same_row(left: tuple, right: tuple) -> bool:
    height = min(left[3] - left[1], right[3] - right[1])
    overlap = min(left[3], right[3]) - max(left[1], right[1])
    return overlap >= 0.6 * max(height, 1) and -height <= right[0] - left[2] <= 1.5 * height


@functools.lru_cache(maxsize=4)
def _engine(models: OcrModels, threads: int, side: int):
    """A RapidOCR engine (shared by every reader of these settings in the process)."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as e:
        raise ModelError('on-screen text needs rapidocr-onnxruntime (pip install -r requirements.txt), '
                         "or set ocr: off") from e
    # lines are recognised one at a time: a batch pads every line to its widest (same text, 18-25% faster)
    options = {'use_cls': False, 'rec_batch_num': 1, 'intra_op_num_threads': threads, 'inter_op_num_threads': 1}
    if models.det:
        options.update(det_model_path=models.det, rec_model_path=models.rec)
        if models.keys:
            options['rec_keys_path'] = models.keys
    try:
        engine = RapidOCR(**options)
    except Exception as e:  # onnxruntime's errors have no common type; the message says which file
        raise ModelError(f'OCR models {models.describe()}: cannot load them ({str(e).splitlines()[0][:200]})') from e
    _detect_at(engine.text_det, side)
    log.info('on-screen text read with %s', models.describe())
    return engine


def _detect_at(detector, side: int) -> None:
    """Make RapidOCR's detector see pictures with their longer side at most `side` pixels (its own det_limit_*
    options cannot say this). rapidocr-onnxruntime 1.4.4 honours det_limit_side_len only with limit_type 'min';
    with 'max' it picks 960, 1500 or 2000 by the picture's own size, so a 1280 x 720 keyframe was detected whole:
    1.8x the pixels, and ~30 glyph-sized boxes on busy moving pictures, each then recognised."""
    from rapidocr_onnxruntime.ch_ppocr_det.utils import DetPreProcess

    sized = DetPreProcess(side, 'max', detector.mean, detector.std)
    detector.get_preprocess = lambda _longer_side: sized


def spaced(text: str) -> str:
    """`text` with runs of joined English words spaced again (small text loses its spaces in recognition:
    'quarterlyrevenuegrew' -> 'quarterly revenue grew'); words the dictionary knows stay whole."""
    return LATIN_RUN.sub(lambda match: _split_words(match.group()), text)


def _split_words(run: str) -> str:
    import wordninja

    words = wordninja.split(run)
    return ' '.join(words) if len(words) > 1 and all(len(w) > 1 or w.lower() in 'ai' for w in words) else run
