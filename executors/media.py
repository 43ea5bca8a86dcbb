"""Where the ffmpeg binary lives: the system's when installed, else the one imageio-ffmpeg ships."""
import functools
import shutil


@functools.cache
def ffmpeg_path() -> str:
    """Path of the ffmpeg binary to run."""
    system = shutil.which('ffmpeg')
    if system:
        return system
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()
