"""Errors a user can cause and fix: the CLI and the page show their message in one line."""


class VcedError(Exception):
    """Base of every error caused by input, configuration or environment, not by a bug."""


class ConfigError(VcedError):
    """flow.yml (or a parameter given to the Flow) is invalid. `key`: the option at fault, as its path
    under the executor's `with:` (('ivf', 'nprobe')), so the Flow can name its flow.yml line."""

    def __init__(self, message: str = '', key: tuple[str, ...] = ()):
        super().__init__(message)
        self.key = tuple(key)


class VideoError(VcedError):
    """A video file cannot be read or decoded; the message names the file and the reason."""


class ModelError(VcedError):
    """CLIP weights are missing, unreadable or not a CLIP checkpoint."""


class QueryError(VcedError):
    """A search query (text or image) is empty or unreadable."""


class WorkspaceError(VcedError):
    """The workspace is locked by another writer, corrupt or missing a file."""


def first_line(error: BaseException, limit: int = 200) -> str:
    """An exception's reason for a one-line message: its first line (at most `limit` characters), or its
    type's name when it has no message."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]
