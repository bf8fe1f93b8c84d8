"""The HTTP API (ASGI, FastAPI): dialers upload, escalation teams read, auditors check.

``create_app(ctx)`` builds the application around an open vault; ``evidence-vault serve``
runs it under uvicorn with one or more worker processes (each opens the vault itself).
"""

from vault.http.app import create_app

__all__ = ["create_app"]
