"""On-screen text test material: videos with lines drawn on them by ffmpeg's drawtext, in Debian's fonts
(fonts-dejavu for English, fonts-noto-cjk for Chinese; `make test` installs both)."""
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from executors.media.cutting import ffmpeg_path

LATIN_FONT = Path('/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf')
CJK_FONT = Path('/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc')
TEXTLESS = ('mandelbrot', 'life=ratio=0.2:mold=10:life_color=#c08040:death_color=#203040', 'gradients=speed=0.05',
            'cellauto=rule=18')  # footage without writing (testsrc draws digits)


@dataclass(frozen=True)
class Drawn:
    """A line drawn from `start` to `end` seconds, `size` pixels high, at (x, y); a ticker scrolls right to left."""

    text: str
    start: float
    end: float
    size: int = 32
    x: int = 40
    y: int = 40
    ticker: bool = False

    @property
    def font(self) -> Path:
        return CJK_FONT if any('\u4e00' <= ch <= '\u9fff' for ch in self.text) else LATIN_FONT


def need_fonts() -> None:
    missing = [str(font) for font in (LATIN_FONT, CJK_FONT) if not font.is_file()]
    if missing:
        pytest.skip(f"fonts missing: {', '.join(missing)} (make test installs fonts-dejavu and fonts-noto-cjk)")


def text_video(path: Path, lines: list[Drawn], duration: float, background: str = 'testsrc2',
               size: tuple[int, int] = (960, 540), rate: int = 10) -> Path:
    """An H.264 MP4 of `background` (an ffmpeg lavfi source) with `lines` drawn on it."""
    width, height = size
    with tempfile.TemporaryDirectory(prefix='vced-text-') as folder:
        filters = []
        for i, line in enumerate(lines):
            text_file = Path(folder) / f'{i}.txt'
            text_file.write_text(line.text, encoding='utf-8')
            x = f'w-mod((t-{line.start})*160\\,w+tw)' if line.ticker else str(line.x)
            filters.append(f"drawtext=fontfile={line.font}:textfile={text_file}:fontsize={line.size}:fontcolor=white:"
                           f"box=1:boxcolor=black@0.6:boxborderw=4:x={x}:y={line.y}:"
                           f"enable='between(t\\,{line.start}\\,{line.end - 0.001})'")
        source = f'{background}{":" if "=" in background else "="}size={width}x{height}:rate={rate}'
        command = [ffmpeg_path(), '-v', 'error', '-y', '-f', 'lavfi', '-i', source, '-t', str(duration),
                   '-vf', ','.join(filters + ['format=yuv420p']), '-c:v', 'libx264', '-preset', 'ultrafast',
                   '-g', str(rate * 4), str(path)]
        subprocess.run(command, check=True, capture_output=True)
    return path
