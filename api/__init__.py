"""VCED's HTTP API (`flow.py serve`): FastAPI routes over the library layer, one writer job queue, token auth."""
from api.app import create_app
from api.server import serve
from api.settings import Settings

__all__ = ['create_app', 'serve', 'Settings']
