"""Warnings a user needs once per process (a missing optional model), not once per video or query."""
import logging
import threading

_given: set[str] = set()
_lock = threading.Lock()


def notice_once(log: logging.Logger, message: str) -> None:
    """Log `message` as a warning the first time this process meets it."""
    with _lock:
        if message in _given:
            return
        _given.add(message)
    log.warning(message)
