"""Progress bars on a terminal (stderr) for indexing: one per video for its keyframes, one for its speech."""
import os
import sys

from library.report import one_line

__all__ = ['TerminalBars']


class TerminalBars:
    """A progress bar per video for its keyframes (decoded, then embedded) and one for its speech (stderr)."""

    def __init__(self):
        self.bars = {}

    def progress(self, video, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        kind = 'speech' if stage == 'speech' else 'frames'
        bar = self.bars.get((video.uri, kind))
        if bar is None:
            name = one_line(os.path.basename(video.uri))[:32]
            bar = self.bars[video.uri, kind] = tqdm(desc=f"{name} {'speech' if kind == 'speech' else ''}".strip(),
                                                    unit='s' if kind == 'speech' else 'step', leave=False,
                                                    file=sys.stderr, disable=None)
        bar.total = max(bar.total or 0, total if kind == 'speech' else 2 * total)
        bar.n = min(done, total) + (total if stage == 'encode' else 0)
        bar.refresh()

    def close(self, uri: str | None = None) -> None:
        for key in [k for k in self.bars if uri is None or k[0] == uri]:
            self.bars.pop(key).close()
