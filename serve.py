"""Starts the page (app.py) with its upload gate in front of Streamlit's server:

    streamlit run serve.py -- [the options of app.py]

In password mode Streamlit's upload endpoint is closed to every session that has not signed in from
the server's very first request (page.sessions.UploadGate), not only once app.py has first run.
"""
import streamlit as st
from starlette.middleware import Middleware

from page.access import password_mode
from page.sessions import UploadGate

app = st.App('app.py', middleware=[Middleware(UploadGate, guarded=lambda: password_mode(st.get_option('server.address')))])
