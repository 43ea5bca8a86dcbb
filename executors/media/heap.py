"""Return freed heap memory to the operating system.

glibc raises its mmap threshold each time a large block is freed, so after the first few keyframes
every 150 KB frame comes from the heap; long-lived small objects (embeddings, documents) allocated
between them pin the freed space, and a 10-hour video's resident memory grows by ~1 GB of holes.
malloc_trim(0) hands those free pages back; elsewhere than glibc this does nothing.
"""
import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, looked up on first use (find_library runs ldconfig: not at every command's start)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> None:
    """Hand the heap's free pages back to the operating system (milliseconds; once per piece of a video)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
