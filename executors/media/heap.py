"""Return freed heap memory to the operating system.

glibc raises its mmap threshold each time a large block is freed, so after the first few keyframes
every 150 KB frame comes from the heap; long-lived small objects (embeddings, documents) allocated
between them pin the freed space, and a 10-hour video's resident memory grows by ~1 GB of holes.
malloc_trim(0) hands those free pages back; elsewhere than glibc this does nothing.
"""
import ctypes
import ctypes.util


def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6').malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_free_memory() -> None:
    """Hand the heap's free pages back to the operating system (milliseconds; once per piece of a video)."""
    if _TRIM is not None:
        _TRIM(0)
