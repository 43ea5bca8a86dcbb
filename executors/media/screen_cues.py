"""Lines of text read from keyframes, in time order, become timed cues.

A line that stays on screen is one cue: it starts at the first keyframe showing it and ends at the
first keyframe read without it (or the video's end). Recognition jitter between keyframes (a
character read differently) continues the cue. A line that scrolls (a ticker: each keyframe shows
the text moved on, overlapping what the last one showed, in the same band of the picture) is
stitched into one growing cue until it holds `max_chars`, so a ticker gives a few long cues
rather than one per keyframe.
"""
import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Protocol

SIMILAR = 0.8  # SequenceMatcher ratio above which two readings are the same line
OVERLAP = 0.5  # a scrolled line shares a run of at least this fraction of the shorter reading
MIN_OVERLAP = 4  # ... and at least this many characters


class Line(Protocol):
    """What the merging reads of a recognised line (executors.models.ocr.TextLine has it)."""

    text: str
    score: float
    box: tuple[float, float, float, float]


@dataclass
class ScreenCue:
    """Text on screen from `start` to `end` (seconds)."""

    start: float
    end: float
    text: str
    score: float = 0.0
    top: float = 0.0
    bottom: float = 0.0


class CueTracker:
    """Feed each read keyframe's lines with `see(time, lines)`, in time order; `finish(end)` gives the cues.

    Keyframes that were not read (unchanged since the last one read) need no call: what was on
    screen stays on screen.
    """

    def __init__(self, max_chars: int = 300):
        self.max_chars = int(max_chars)
        self.open: list[ScreenCue] = []
        self.closed: list[ScreenCue] = []

    def see(self, time: float, lines: list[Line]) -> None:
        still: list[ScreenCue] = []
        unmatched = list(self.open)
        for line in lines:
            cue = _partner(line, unmatched)
            if cue is None:
                if not any(_within(line, shown) for shown in still):  # else a piece of a line already matched
                    still.append(_new(time, line))
                continue
            unmatched.remove(cue)
            if _key(line.text) == _key(cue.text) or _similar(line.text, cue.text):
                if line.score > cue.score:
                    cue.text, cue.score = line.text, line.score
                still.append(cue)
                continue
            joined = stitch(cue.text, line.text)
            if len(joined) > self.max_chars:  # a long ticker: this cue is full, the next one starts here
                cue.end = time
                self.closed.append(cue)
                still.append(_new(time, line))
            else:
                cue.text, cue.score = joined, min(cue.score, line.score)
                still.append(cue)
        for cue in unmatched:
            cue.end = time
            self.closed.append(cue)
        self.open = still

    def finish(self, end: float) -> list[ScreenCue]:
        """Every cue, by start time; what is still on screen ends at `end`."""
        for cue in self.open:
            cue.end = max(end, cue.start)
        cues, self.open, self.closed = self.closed + self.open, [], []
        return sorted(cues, key=lambda cue: (cue.start, cue.top, cue.text))


def _new(time: float, line: Line) -> ScreenCue:
    return ScreenCue(time, time, line.text, line.score, line.box[1], line.box[3])


def _partner(line: Line, cues: list[ScreenCue]) -> ScreenCue | None:
    """The open cue this line continues: the same text anywhere, else a similar or scrolled reading in its band."""
    key = _key(line.text)
    same = next((cue for cue in cues if _key(cue.text) == key), None)
    if same is not None:
        return same
    banded = [cue for cue in cues if _band_overlap(line.box, cue) >= 0.5]
    return next((cue for cue in banded if _similar(line.text, cue.text) or _scrolled(cue.text, line.text)
                 or _within(line, cue)), None)


def _within(line: Line, cue: ScreenCue) -> bool:
    """Whether the line is a piece of the cue's text in its band (a ticker read in two boxes)."""
    key = _key(line.text)
    return len(key) >= MIN_OVERLAP and _band_overlap(line.box, cue) >= 0.5 and key in _key(cue.text)


def _band_overlap(box: tuple[float, float, float, float], cue: ScreenCue) -> float:
    overlap = min(box[3], cue.bottom) - max(box[1], cue.top)
    return overlap / max(1e-6, min(box[3] - box[1], cue.bottom - cue.top))


def _key(text: str) -> str:
    """What two readings of one line share: case, spaces and punctuation aside."""
    return ''.join(ch for ch in unicodedata.normalize('NFKC', text).casefold() if ch.isalnum())


def _similar(a: str, b: str) -> bool:
    return SequenceMatcher(None, _key(a), _key(b), autojunk=False).ratio() >= SIMILAR


def _scrolled(earlier: str, later: str) -> bool:
    """Whether `later` shows `earlier` moved on: a long shared run that ends near `earlier`'s end."""
    match = SequenceMatcher(None, earlier, later, autojunk=False).find_longest_match(0, len(earlier), 0, len(later))
    return (match.size >= max(MIN_OVERLAP, OVERLAP * min(len(_tail(earlier)), len(later)))
            and match.a + match.size >= len(earlier) - 3)


def _tail(text: str) -> str:
    return text[-120:]  # a stitched ticker is compared by what was last on screen


def stitch(earlier: str, later: str) -> str:
    """`earlier` extended by what `later` shows past their shared run (a ticker's new text)."""
    match = SequenceMatcher(None, earlier, later, autojunk=False).find_longest_match(0, len(earlier), 0, len(later))
    if match.size == 0 or match.a + match.size < len(earlier) - 3:
        return earlier
    return re.sub(r'\s+', ' ', earlier[:match.a + match.size] + later[match.b + match.size:]).strip()
