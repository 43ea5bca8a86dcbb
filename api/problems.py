"""Errors as RFC 9457 problem details (application/problem+json), with the CLI's one-line reasons."""
import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from executors.errors import ModelError, QueryError, VcedError, VideoError, WorkspaceError
from library import one_line

__all__ = ['Problem', 'problem', 'install', 'status_of']

log = logging.getLogger(__name__)

STATUS = [(QueryError, 400), (VideoError, 422), (ModelError, 503), (WorkspaceError, 503), (VcedError, 400)]


class Problem(HTTPException):
    """An error answered as problem+json: `status` and the one-line `detail` a user reads."""

    def __init__(self, status: int, detail: str, headers: dict | None = None):
        super().__init__(status, one_line(detail), headers)


def problem(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    body = {'type': 'about:blank', 'title': HTTPStatus(status).phrase, 'status': status, 'detail': one_line(detail)}
    return JSONResponse(body, status, headers=headers, media_type='application/problem+json')


def status_of(error: VcedError) -> int:
    """400 for a bad query, 422 for an unreadable video, 503 for missing models or a locked or broken workspace."""
    return next(status for kind, status in STATUS if isinstance(error, kind))


def install(app: FastAPI) -> None:
    """Answer every error, including FastAPI's own (404, 405, validation) and bugs, as problem+json."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
        return problem(error.status_code, detail, getattr(error, 'headers', None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return problem(422, validation_reason(error))

    @app.exception_handler(VcedError)
    async def user_error(request: Request, error: VcedError) -> JSONResponse:
        return problem(status_of(error), str(error))

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> JSONResponse:
        log.exception('%s %s failed', request.method, request.url.path)
        return problem(500, f'{type(error).__name__}: the server failed (see its log)')


def validation_reason(error: RequestValidationError) -> str:
    """'top: Input should be greater than or equal to 1' for the first invalid field."""
    first = (error.errors() or [{}])[0]
    where = '.'.join(str(part) for part in first.get('loc', ()) if part not in ('body', 'query', 'path'))
    return f"{where or 'request'}: {first.get('msg', 'invalid')}"
