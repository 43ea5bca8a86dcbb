"""Milvus Lite's log noise, silenced where it comes from: nothing a VCED user can act on."""
import logging

__all__ = ['quiet_milvus_lite']


class _UnimplementedTimestamps(logging.Filter):
    """pymilvus asks Milvus Lite's in-process gRPC server for AllocTimestamp, which it does not implement
    (and does not need); grpc logs each call as an ERROR with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if not isinstance(error, NotImplementedError):
            return True
        trace = error.__traceback__
        while trace is not None:
            if trace.tb_frame.f_code.co_name == 'AllocTimestamp':
                return False
            trace = trace.tb_next
        return True


class _BelowWarning(logging.Filter):
    """jieba's progress lines while it loads its dictionary (a filter: importing jieba resets its level)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def quiet_milvus_lite() -> None:
    """Drop grpc's AllocTimestamp tracebacks and jieba's DEBUG lines (loading its dictionary); idempotent."""
    server = logging.getLogger('grpc._server')
    if not any(isinstance(f, _UnimplementedTimestamps) for f in server.filters):
        server.addFilter(_UnimplementedTimestamps())
    jieba = logging.getLogger('jieba')  # set to DEBUG, with a handler of its own, when Milvus Lite imports it
    if not any(isinstance(f, _BelowWarning) for f in jieba.filters):
        jieba.addFilter(_BelowWarning())
