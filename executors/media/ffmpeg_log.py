"""Reading what the frame reader's ffmpeg logs: keyframe times (showinfo), shot cuts (scdet) and complaints.

ffmpeg runs with `-loglevel level+info`, so every line carries its context and level:

    [Parsed_showinfo_3 @ 0x55e6..] [info] n:   0 pts:      0 pts_time:0       pos: ...   (4.4, 5.1, 9.0)
    [scdet @ 0x55e6..] [info] lavfi.scd.score: 27.475, lavfi.scd.time: 1             (4.4, 5.1: Debian 12)
    [Parsed_scdet_0 @ 0x7f94..] [info] lavfi.scd.score: 27.475, lavfi.scd.time: 1     (9.0: imageio-ffmpeg)

Releases name the context differently, so the patterns accept `scdet`, `Parsed_scdet_N` and the
like, and a line that mentions a keyframe time or a cut but cannot be read is remembered in
`unreadable`: the reader then fails instead of indexing a video with its cuts or times missing.
"""
import collections
import math
import re
from fractions import Fraction

FILTER_LINE = re.compile(r'^\[(?:Parsed_)?(showinfo|scdet)(?:_\d+)? @ (?:0x)?[0-9a-fA-F]+\] (?:\[info\] )?(.*)$')
TIME_BASE = re.compile(r'^config in time_base: (\d+)/(\d+)')
FRAME_PTS = re.compile(r'^n:\s*\d+\s+pts:\s*(\S+)\s+pts_time:(\S+)')
CUT_TIME = re.compile(r'^lavfi\.scd\.score: [\d.]+, lavfi\.scd\.time: (\S+)$')
MENTIONS_TIMES = re.compile(r'pts_time:|lavfi\.scd\.time')
PROBLEM = re.compile(r'\[(warning|error|fatal)\] ')
CONTEXT = re.compile(r'^(\[[^\]]*\] )+')  # `[h264 @ 0x..] [error] ` before a message


class FfmpegLog:
    """Sorts the lines of one ffmpeg run; `shots` (cut times, seconds) fill as they arrive."""

    def __init__(self):
        self.shots: list[float] = []
        self.tail: collections.deque = collections.deque(maxlen=3)  # the last complaints, for error messages
        self.truncated = False  # the file ends before its last frame
        self.damaged = 0  # frames the decoder concealed
        self.unreadable = ''  # the first line about a time or a cut that could not be read
        self._time_base: Fraction | None = None

    def read(self, line: str) -> float | None:
        """Take one line; return a keyframe's time in seconds (NaN when its line is unreadable), else None."""
        found = FILTER_LINE.match(line)
        if found and found.group(1) == 'showinfo':
            return self._showinfo(line, found.group(2))
        if found and found.group(1) == 'scdet':
            self._scdet(line, found.group(2))
        elif MENTIONS_TIMES.search(line):
            self._unreadable(line)
        elif PROBLEM.search(line):
            self.tail.append(CONTEXT.sub('', line))
            self.truncated |= 'partial file' in line
            self.damaged += 'corrupt decoded frame' in line
        return None

    def _showinfo(self, line: str, message: str) -> float | None:
        if match := FRAME_PTS.match(message):  # pts_time is rounded to 6 digits: exact pts x time base first
            pts, pts_time = match.groups()
            if re.fullmatch(r'-?\d+', pts) and self._time_base:
                return float(int(pts) * self._time_base)
            if _is_number(pts_time):
                return float(pts_time)
            self._unreadable(line)
            return math.nan
        if match := TIME_BASE.match(message):
            if int(match.group(2)):
                self._time_base = Fraction(int(match.group(1)), int(match.group(2)))
        elif MENTIONS_TIMES.search(message):
            self._unreadable(line)
        return None

    def _scdet(self, line: str, message: str) -> None:
        match = CUT_TIME.match(message)
        if match and _is_number(match.group(1)):
            if float(match.group(1)) > 0:  # a "cut" at the first frame is no cut
                self.shots.append(float(match.group(1)))
        elif 'lavfi.scd' in message:
            self._unreadable(line)

    def _unreadable(self, line: str) -> None:
        self.unreadable = self.unreadable or line


def _is_number(text: str) -> bool:
    return bool(re.fullmatch(r'-?\d+(\.\d*)?(e[-+]?\d+)?', text))
