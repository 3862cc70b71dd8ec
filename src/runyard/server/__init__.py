"""The REST server: an app factory (FastAPI) over one store context, served by uvicorn.

An adapter like the CLI: it parses requests, checks tokens and renders answers; what a route
does is a call into the core, the stores or a kind of run. Wire schemas live only here.
"""
