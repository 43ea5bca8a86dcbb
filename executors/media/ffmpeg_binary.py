"""Which ffmpeg runs: flow.yml's choice (auto, bundled, system or a path) resolved to a binary and its version.

`auto` is the system's ffmpeg (first on PATH) when it is 4.4 or later, else the one imageio-ffmpeg
ships. The choice is made again whenever it is asked for: a process never keeps a binary found
earlier, so the page and the CLI given the same PATH and flow.yml run the same ffmpeg.
"""
import functools
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from executors.errors import ConfigError
from executors.file_facts import remembered

log = logging.getLogger(__name__)

MIN_RELEASE = (4, 4)  # scdet, the shot-cut filter, appeared in ffmpeg 4.4
CHOICES = ('auto', 'bundled', 'system')


@dataclass(frozen=True)
class FfmpegBinary:
    """An ffmpeg executable and what `ffmpeg -version` says it is."""

    path: str
    version: str  # 'ffmpeg version 5.1.6-0+deb12u1 Copyright ...': the first line of `ffmpeg -version`
    release: tuple[int, int] | None  # (major, minor); None for a git build ('ffmpeg version N-118000-g...')

    @property
    def name(self) -> str:
        """'ffmpeg 5.1.6-0+deb12u1': how messages name this ffmpeg."""
        words = self.version.split()
        return f'ffmpeg {words[2]}' if len(words) > 2 and words[1] == 'version' else self.version or 'ffmpeg'

    def __str__(self) -> str:
        return f'{self.name} ({self.path})'


def find_ffmpeg(choice: str = 'auto') -> FfmpegBinary:
    """The ffmpeg that `choice` names: 'auto', 'bundled' (imageio-ffmpeg's), 'system' (PATH's) or a path.

    Raises ConfigError naming the binary when it is missing, does not run, or is older than 4.4.
    """
    if choice == 'auto':
        system = shutil.which('ffmpeg')
        if system:
            found = read_binary(system)
            if found.release is None or found.release >= MIN_RELEASE:
                return found
            log.debug('%s is older than %d.%d: using the bundled ffmpeg instead', found, *MIN_RELEASE)
        return _checked(read_binary(bundled_path()))
    if choice == 'bundled':
        return _checked(read_binary(bundled_path()))
    if choice == 'system':
        system = shutil.which('ffmpeg')
        if not system:
            raise ConfigError('ffmpeg: system: no ffmpeg on PATH (apt-get install ffmpeg, or choose auto or bundled)')
        return _checked(read_binary(system))
    path = shutil.which(choice) if os.sep not in choice else choice
    if not path or not os.path.isfile(path):
        raise ConfigError(f"ffmpeg: {choice}: no such program (valid: {', '.join(CHOICES)} or the path of an ffmpeg)")
    return _checked(read_binary(path))


def ffmpeg_path() -> str:
    """Path of the ffmpeg that `auto` chooses now (for callers without a flow.yml choice)."""
    return find_ffmpeg('auto').path


def bundled_path() -> str:
    """imageio-ffmpeg's binary; ConfigError when that package is not installed."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError) as e:
        raise ConfigError(f'ffmpeg: bundled: imageio-ffmpeg has no ffmpeg here ({e}); '
                          'pip install imageio-ffmpeg, or apt-get install ffmpeg') from e


def read_binary(path: str) -> FfmpegBinary:
    """Run `path -version` (once per version of the file, remembered across processes: executors/file_facts.py;
    a replaced binary is read again)."""
    try:
        status = os.stat(path)
    except OSError as e:
        raise ConfigError(f'ffmpeg: {path}: cannot use it ({e.strerror})') from e
    return _read_binary(os.path.abspath(path), status.st_mtime_ns, status.st_size)


@functools.lru_cache(maxsize=16)
def _read_binary(path: str, mtime_ns: int, size: int) -> FfmpegBinary:
    version = remembered('ffmpeg -version', path, size, mtime_ns, lambda: _version_line(path))
    return FfmpegBinary(path, version, release_of(version))


def _version_line(path: str) -> str:
    """The first line of `path -version`; ConfigError when that is not an ffmpeg's."""
    try:
        result = subprocess.run([path, '-version'], capture_output=True, text=True, errors='replace', timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f'ffmpeg: {path}: does not run ({getattr(e, "strerror", None) or e})') from e
    version = result.stdout.partition('\n')[0].strip()
    if result.returncode != 0 or not version.startswith('ffmpeg version'):
        raise ConfigError(f'ffmpeg: {path}: not an ffmpeg (`-version` says {version[:80] or "nothing"!r})')
    return version


def release_of(version: str) -> tuple[int, int] | None:
    """(major, minor) of a `-version` line: 'n9.0.2-17-g2a...' and '5.1.6-0+deb12u1' have one, 'N-118000-g...' not."""
    found = re.match(r'ffmpeg version n?(\d+)\.(\d+)', version)
    return (int(found.group(1)), int(found.group(2))) if found else None


def _checked(binary: FfmpegBinary) -> FfmpegBinary:
    if binary.release is not None and binary.release < MIN_RELEASE:
        raise ConfigError(f'{binary}: too old; VCED needs ffmpeg {MIN_RELEASE[0]}.{MIN_RELEASE[1]} or later '
                          '(its scdet filter finds the shot cuts)')
    return binary
