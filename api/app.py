"""The HTTP API's routes (/v1): search, videos, jobs, transcripts, media and health, over one Library.

Every route calls the library layer; blocking calls run on the server's thread pool, so searches
run side by side while the one writer (api/jobs.py) indexes or deletes.
"""
import threading
from contextlib import asynccontextmanager
from typing import Literal

import numpy as np

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api import problems, schemas
from api.auth import TokenCheck
from api.jobs import JobQueue
from api.problems import Problem
from api.settings import Settings
from api.streams import file_response, job_events
from api.uploads import BodyLimit, inside, save_video_upload
from executors.documents import VideoDoc
from executors.errors import VcedError
from library import Library, format_srt, format_vtt, match_record, read_image, video_record

__all__ = ['create_app']

BY = {'moment': 'segment', 'segment': 'segment', 'video': 'video'}  # the API's `by` -> the library's


def create_app(library: Library, settings: Settings) -> FastAPI:
    """The API over `library` (whose models load in the background at start-up), as `settings` allow."""
    state = _State(library, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=state.warm_up, name='vced-warm-up', daemon=True).start()
        yield
        await run_in_threadpool(state.jobs.close)

    app = FastAPI(title='VCED', version='1', lifespan=lifespan,
                  description='Find the moments in a video library that match a sentence or an image.')
    problems.install(app)
    limits, default = settings.body_limits()
    app.add_middleware(BodyLimit, limits=limits, default=default)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=['GET', 'POST', 'DELETE'],
                           allow_headers=['Authorization', 'Content-Type', 'Range'],
                           expose_headers=['Location', 'Content-Range'])
    app.include_router(_health(state))
    app.include_router(_routes(state), dependencies=[Depends(TokenCheck(settings.token_hashes))])
    return app


class _State:
    def __init__(self, library: Library, settings: Settings):
        self.library, self.settings = library, settings
        self.jobs = JobQueue(library)
        self.ready = threading.Event()
        self.warm_error: VcedError | None = None
        self.notices: list[str] = []

    def warm_up(self) -> None:
        try:
            self.notices = self.library.warm_up()
        except VcedError as e:
            self.warm_error = e
        finally:
            self.ready.set()

    def wait_ready(self) -> None:
        if not self.ready.wait(self.settings.warm_timeout):
            raise Problem(503, 'the models are still loading: try again shortly', {'Retry-After': '5'})
        if self.warm_error is not None:
            raise self.warm_error

    def find(self, video_id: str) -> VideoDoc:
        """The indexed video `video_id` names (its id or a unique prefix of 6+ hex characters); 404 when none."""
        if not (6 <= len(video_id) <= 64 and all(c in '0123456789abcdef' for c in video_id.lower())):
            raise Problem(404, f"'{video_id}' is not a video id (6 to 64 hex characters)")
        found = [v for v in self.library.videos() if v.video_id.startswith(video_id.lower())]
        if len(found) > 1:
            raise Problem(409, f"video id '{video_id}' is ambiguous: {len(found)} videos start with it")
        if not found:
            raise Problem(404, f"no indexed video matches '{video_id}'")
        return found[0]


def _health(state: _State) -> APIRouter:
    router = APIRouter(prefix='/v1', tags=['health'])

    @router.get('/healthz', summary='The server is running')
    def healthz() -> dict:
        return {'status': 'ok'}

    @router.get('/readyz', summary='The models are loaded: searches answer at full speed',
                responses={503: schemas.PROBLEM})
    def readyz() -> dict:
        if not state.ready.is_set():
            raise Problem(503, 'the models are still loading', {'Retry-After': '5'})
        if state.warm_error is not None:
            raise Problem(503, str(state.warm_error))
        return {'status': 'ready', 'notices': state.notices}

    return router


def _routes(state: _State) -> APIRouter:
    router = APIRouter(prefix='/v1', responses={401: schemas.PROBLEM, 422: schemas.PROBLEM})
    library, settings = state.library, state.settings

    @router.post('/search', tags=['search'], summary='The moments matching a text or an image',
                 openapi_extra=schemas.SEARCH_BODY, response_model=schemas.SearchResults,
                 responses={400: schemas.PROBLEM, 413: schemas.PROBLEM, 415: schemas.PROBLEM, 503: schemas.PROBLEM})
    async def search(request: Request) -> JSONResponse:
        query, image = await _search_input(request)
        if state.ready.is_set():
            state.wait_ready()  # at once (or the warm-up's error): no trip to a worker thread
        else:
            await run_in_threadpool(state.wait_ready)
        matches = await run_in_threadpool(library.search, text=query.text, image=image, top=query.top, by=BY[query.by],
                                          within=query.within, offset=query.offset)
        return JSONResponse({'results': [match_record(m) for m in matches]})

    @router.get('/videos', tags=['videos'], summary='The indexed videos, oldest first, a page at a time')
    def videos(offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)) -> schemas.Videos:
        everything = library.videos()
        return schemas.Videos(videos=[video_record(v) for v in everything[offset:offset + limit]], total=len(everything))

    @router.post('/videos', tags=['videos'], status_code=202, summary='Index a server-side file or folder, or an upload',
                 openapi_extra=schemas.ADD_BODY, response_model=schemas.Accepted,
                 responses={403: schemas.PROBLEM, 404: schemas.PROBLEM, 413: schemas.PROBLEM, 415: schemas.PROBLEM})
    async def add(request: Request) -> JSONResponse:
        kind = request.headers.get('content-type', '')
        if kind.startswith('multipart/form-data'):
            async with request.form(max_files=1, max_fields=4) as form:
                upload = form.get('file')
                if not isinstance(upload, UploadFile):
                    raise Problem(422, "file: a video file is required (multipart field 'file')")
                saved = await run_in_threadpool(save_video_upload, upload, settings.upload_dir)
            job = state.jobs.index([str(saved)], uploaded=True)
        elif kind.startswith('application/json'):
            body = _validated(schemas.AddRequest, await request.body())
            job = state.jobs.index([str(await run_in_threadpool(inside, body.path, settings.allow_dirs))])
        else:
            raise Problem(415, 'send JSON {"path": ...} or a multipart upload with a file field')
        return JSONResponse({'job': job.id}, 202, headers={'Location': f'/v1/jobs/{job.id}'})

    @router.get('/videos/{video_id}', tags=['videos'], summary='One indexed video', responses={404: schemas.PROBLEM})
    def video(video_id: str) -> schemas.Video:
        return schemas.Video(**video_record(state.find(video_id)))

    @router.delete('/videos/{video_id}', tags=['videos'], status_code=204, summary='Remove a video from the index',
                   response_class=Response, responses={404: schemas.PROBLEM, 409: schemas.PROBLEM})
    def delete(video_id: str) -> Response:
        job = state.jobs.delete(state.find(video_id).video_id)
        job.finished.wait()
        if job.state == 'failed':
            raise Problem(job.status, job.error)
        return Response(status_code=204)

    @router.get('/videos/{video_id}/transcript', tags=['videos'], summary="A video's timed text",
                response_model=schemas.Transcript, responses={404: schemas.PROBLEM, 200: schemas.TRANSCRIPT_TYPES})
    def transcript(video_id: str, format: Literal['json', 'srt', 'vtt'] = 'json') -> Response:
        found = state.find(video_id)
        cues = library.transcript(found.video_id)
        if not cues:
            raise Problem(404, f'{video_id}: no subtitles or recognised speech are stored for it')
        if format == 'srt':
            return PlainTextResponse(format_srt(cues), media_type='application/x-subrip')
        if format == 'vtt':
            return PlainTextResponse(format_vtt(cues), media_type='text/vtt')
        return JSONResponse({'video_id': found.video_id, 'cues': [schemas.cue(c) for c in cues]})

    @router.api_route('/videos/{video_id}/media', methods=['GET', 'HEAD'], tags=['videos'], response_class=Response,
                      summary="An indexed video's file, with range requests",
                      responses={200: schemas.VIDEO_TYPES, 206: schemas.VIDEO_TYPES, 404: schemas.PROBLEM,
                                 416: schemas.PROBLEM})
    def media(request: Request, video_id: str, range: str | None = Header(None)) -> Response:
        return file_response(state.find(video_id).uri, range, body=request.method == 'GET')

    @router.get('/jobs/{job_id}', tags=['jobs'], summary="A job's state and each video's outcome (text/event-stream: "
                                                         'every change until it ends)',
                responses={200: schemas.JOB_TYPES, 404: schemas.PROBLEM})
    def job(job_id: str, accept: str | None = Header(None)) -> schemas.JobView:
        found = state.jobs.get(job_id)
        if found is None:
            raise Problem(404, f"no job '{job_id}' (jobs are kept while the server runs)")
        if 'text/event-stream' in (accept or ''):
            return job_events(found)
        return schemas.JobView(**found.view())

    return router


async def _search_input(request: Request) -> tuple[schemas.SearchRequest, np.ndarray | None]:
    """The search's fields (a JSON body, or a multipart form's fields) and its image, decoded, if any."""
    kind = request.headers.get('content-type', '')
    if kind.startswith('application/json'):
        return _validated(schemas.SearchRequest, await request.body()), None
    if not kind.startswith('multipart/form-data'):
        raise Problem(415, 'send JSON {"text": ...} or a multipart form with an image field')
    async with request.form(max_files=1, max_fields=8) as form:
        query = _validated(schemas.SearchRequest, {k: v for k, v in form.items() if k != 'image'})
        image = form.get('image')
        if image is None:
            return query, None
        if not isinstance(image, UploadFile):
            raise Problem(422, 'image: must be a file (multipart upload)')
        return query, await run_in_threadpool(read_image, image.file, image.filename or 'the image')


def _validated(model, data: dict | bytes):
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as e:
        raise RequestValidationError(e.errors()) from None
