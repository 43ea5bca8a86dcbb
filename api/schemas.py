"""The API's JSON: request and response models (they make /openapi.json), with the CLI's --json keys."""
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from executors.documents import CueDoc

__all__ = ['SearchRequest', 'SearchResults', 'Video', 'Videos', 'AddRequest', 'Accepted', 'JobView', 'Transcript', 'cue']


class SearchRequest(BaseModel):
    """A search by `text`, or by an uploaded `image` (multipart) with the same fields."""

    model_config = ConfigDict(extra='forbid', populate_by_name=True)
    text: str = Field('', max_length=2000, description='what to look for, in words')
    top: int = Field(10, ge=1, le=1000, description='how many results')
    offset: int = Field(0, ge=0, le=100_000, description='skip the first N results (paging)')
    within: Literal['all', 'visual', 'speech', 'screen'] = Field('all', alias='in',
                                                                 description='search what is seen, said, shown as text, or all')
    by: Literal['moment', 'segment', 'video'] = Field('moment', description='rank moments (segment) or whole videos')


class SearchResult(BaseModel):
    video: str
    video_id: str
    start: float
    end: float
    timestamp: float
    score: float
    thumbnail: str | None
    source: str
    text: str | None


class SearchResults(BaseModel):
    results: list[SearchResult]


class Video(BaseModel):
    video: str
    video_id: str
    duration: float
    frames: int
    cues: int
    screen_texts: int = 0  # on-screen text cues
    added: str


class Videos(BaseModel):
    videos: list[Video]
    total: int = Field(description='videos in the library (the page holds at most `limit` of them)')


class AddRequest(BaseModel):
    model_config = ConfigDict(extra='forbid')
    path: str = Field(min_length=1, max_length=4096, description='a video file or folder on the server, inside --allow-dir')


class Accepted(BaseModel):
    job: str


class JobVideo(BaseModel):
    video: str
    video_id: str
    status: str
    error: str | None


class JobView(BaseModel):
    job: str
    kind: Literal['index', 'delete']
    state: Literal['queued', 'running', 'done', 'failed']
    videos: list[JobVideo]
    progress: dict | None = Field(None, description='the running video: video, stage, done, total, fraction, text')
    error: str | None = None


class Cue(BaseModel):
    start: float
    end: float
    text: str
    source: str
    language: str


class Transcript(BaseModel):
    video_id: str
    cues: list[Cue]


def cue(c: CueDoc) -> dict:
    return {'start': round(c.start, 3), 'end': round(c.end, 3), 'text': c.text, 'source': c.source, 'language': c.language}


PROBLEM = {'description': 'a problem (RFC 9457)', 'content': {'application/problem+json': {'schema': {
    'type': 'object', 'properties': {'type': {'type': 'string'}, 'title': {'type': 'string'},
                                     'status': {'type': 'integer'}, 'detail': {'type': 'string'}}}}}}
_FIELDS = {name: schema for name, schema in SearchRequest.model_json_schema(by_alias=True)['properties'].items()}
SEARCH_BODY = {'requestBody': {'required': True, 'content': {
    'application/json': {'schema': SearchRequest.model_json_schema(by_alias=True)},
    'multipart/form-data': {'schema': {'type': 'object', 'required': ['image'], 'properties': {
        'image': {'type': 'string', 'format': 'binary', 'description': 'search by this image'}, **_FIELDS}}}}}}
ADD_BODY = {'requestBody': {'required': True, 'content': {
    'application/json': {'schema': AddRequest.model_json_schema()},
    'multipart/form-data': {'schema': {'type': 'object', 'required': ['file'], 'properties': {
        'file': {'type': 'string', 'format': 'binary', 'description': 'a video to save in the upload folder and index'}}}}}}}
TRANSCRIPT_TYPES = {'content': {'application/x-subrip': {'schema': {'type': 'string'}},
                                'text/vtt': {'schema': {'type': 'string'}}}}
VIDEO_TYPES = {'description': 'the video (206: the range asked for)',
               'content': {'video/*': {'schema': {'type': 'string', 'format': 'binary'}}}}
JOB_TYPES = {'content': {'text/event-stream': {'schema': {'type': 'string'},
                                               'description': '`event: job` with this JSON after every change'}}}
