"""``detbox serve``: a detector behind HTTP (FastAPI + uvicorn, the ``detbox[serve]`` extra).

``detbox.serve.app.create_app(model, ...)`` builds the application (testable without a
socket); ``uploads`` turns uploaded bytes into pixels or a client error, ``batching`` runs the
images of concurrent requests through the model together; ``page.html`` is the page at ``/``.
"""

from __future__ import annotations

import importlib.util

from detbox.errors import DetboxError

__all__ = ["require_serve_extra"]

# module -> the distribution that provides it
SERVE_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart"}


def require_serve_extra() -> None:
    """Raise a one-line DetboxError naming the install command when the extra is missing."""
    missing = [dist for module, dist in SERVE_MODULES.items()
               if importlib.util.find_spec(module) is None]
    if missing:
        raise DetboxError(f"detbox serve needs {', '.join(missing)}: "
                          'pip install "detbox[serve]"')
