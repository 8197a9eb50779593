"""Codecs: pure conversions between wire formats and numpy arrays.

JSON numbers and tabular records (``arrays``), flat JSON bodies straight into numpy with
simdjson (``flatjson``), base64 and uploaded images and PNG answers (``images``), NumPy's
``.npy`` (``npy``). No I/O, no scheduling, no protocol objects.

May import: numpy, orjson, simdjson, Pillow and ``service.runtime``. Never FastAPI, Starlette,
uvicorn or the ``dataplane`` and ``http`` layers (import-linter checks it).
"""
