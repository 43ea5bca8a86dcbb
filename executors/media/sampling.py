"""Which frames of a video become keyframes: the four strategies as ffmpeg `select` expressions."""
import math
from dataclasses import dataclass

from executors.errors import ConfigError

STRATEGIES = ('uniform', 'count', 'scene', 'iframe')


@dataclass(frozen=True)
class Sampling:
    """A sampling strategy and its settings (flow.yml's VideoLoader parameters).

    Every strategy keeps a frame's own presentation time: `uniform` and `count` take the first
    frame at or after each target time instead of resampling to a grid, so no frame is invented.
    """

    strategy: str = 'uniform'
    fps: float = 1.0  # uniform: keyframes per second
    count: int = 12  # count: keyframes per video, evenly spaced
    scene_threshold: float = 0.1  # scene cuts: ffmpeg's scene score (0-1) above which a frame starts a new shot
    max_gap: float = 5.0  # scene: seconds after which a long shot gets another keyframe

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy '{self.strategy}' (valid: {', '.join(STRATEGIES)})")
        _require(self.fps > 0, f'fps must be above 0, not {self.fps}')
        _require(self.count >= 1, f'count must be at least 1, not {self.count}')
        _require(0 < self.scene_threshold <= 1, f'scene_threshold must be in (0, 1], not {self.scene_threshold}')
        _require(self.max_gap > 0, f'max_gap must be above 0 seconds, not {self.max_gap}')

    def select_expression(self, duration: float) -> str:
        """ffmpeg `select` expression that picks this strategy's frames.

        `t` is a frame's time and `prev_selected_t` the previous keyframe's (NaN before the first);
        `scene` is the frame's scene-change score against the previous decoded frame.
        """
        first = 'isnan(prev_selected_t)'
        if self.strategy == 'uniform':
            return f"{first}+gt({_slot('t', self.fps)},{_slot('prev_selected_t', self.fps)})"
        if self.strategy == 'count':
            if duration <= 0:
                raise ValueError('count sampling needs the duration')
            # slot k opens at the centre of the k-th of `count` equal spans: (k + 0.5) * duration / count
            rate = self.count / duration
            slot = _slot('t', rate, -0.5)
            return f"gte({slot},0)*lt({slot},{self.count})*({first}+gt({slot},{_slot('prev_selected_t', rate, -0.5)}))"
        if self.strategy == 'scene':
            return f'{first}+gt(scene,{self.scene_threshold!r})+gte(t-prev_selected_t,{self.max_gap!r})'
        return 'key'  # iframe: the decoder already skips the rest; this guards decoders that ignore skip_frame

    def decoder_options(self, skip_nonref: bool) -> dict[str, str]:
        """Input options telling the decoder which frames it may skip.

        `iframe` decodes keyframes only; sparse `uniform` and `count` sampling may skip frames that
        no other frame references (B-frames): the keyframe then lands a few frames later, with
        its own exact time. `scene` needs every frame to place cuts to the frame.
        """
        if self.strategy == 'iframe':
            return {'skip_frame': 'nokey'}
        if skip_nonref and self.strategy in ('uniform', 'count'):
            return {'skip_frame': 'noref'}
        return {}

    def expected_frames(self, duration: float) -> int:
        """About how many keyframes a video of `duration` seconds gives (for progress bars)."""
        if self.strategy == 'uniform':
            return max(1, math.ceil(duration * self.fps))
        if self.strategy == 'count':
            return self.count
        if self.strategy == 'scene':
            return max(1, math.ceil(duration / self.max_gap))
        return max(1, math.ceil(duration / 2))  # iframe: cameras and phones put a keyframe every 1-2 s


def _slot(time: str, per_second: float, shift: float = 0.0) -> str:
    """Index of the sampling slot `time` falls in (1e-6: a frame stamped 0.999999 s opens slot 1)."""
    return f'floor({time}*{per_second!r}{shift:+}+1e-6)'


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)
