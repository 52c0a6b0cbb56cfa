"""Vercel entry points: one file = one function, each exporting an ASGI `app` built by
shared.web.create_app from the routers in `routers`. Files starting with `_` are not functions.
"""
