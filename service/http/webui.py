"""The face for people: the web app at ``/``, offline ``/docs`` and ``/redoc``, model cards as
HTML, and the reference sets the latent map draws.

``install_webui(app)`` adds the routes to an app built by ``create_app`` (which turns FastAPI's own
CDN-backed docs pages off). Everything a page loads comes from this service: the app's static
files and the vendored Swagger UI and ReDoc bundles live in ``service/web/`` (package data;
``scripts/vendor-web.sh`` pins their versions and licences in ``service/web/vendor/VERSIONS``).
"""

from __future__ import annotations

import gzip
import html
import logging
import mimetypes
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from service.http.deps import RepositoryDep
from service.http.openapi import responses
from service.http.responses import json_response
from service.runtime.errors import ModelNotFound
from service.runtime.reference import REFERENCE_FILE, load_reference

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parents[1] / "web"  # service/web: package data
STATIC_PREFIX = "/web"  # where WEB_DIR is mounted


class ReferencePlane(BaseModel):
    kind: str = Field(description="'latent' (the 2-D code space itself) or 'pca'")
    mean: list[float] = Field(description="[latent.dim]: the plane's origin in code space")
    axes: list[list[float]] = Field(description="[2, latent.dim]: orthonormal axes")
    explained: list[float] = Field(description="share of the codes' variance along each axis")


class ReferenceResponse(BaseModel):
    """A model's reference set: codes of a fixed subset of its dataset, and a 2-D map of them.

    A point ``(u, v)`` of the map is the code ``plane.mean + u * plane.axes[0] + v *
    plane.axes[1]``; ``/decode`` it to see what the model makes of that place.
    """

    model: str
    version: str
    split: str = Field(description="the dataset split the items come from")
    n: int = Field(description="items in this answer (all of the set unless ?limit=)")
    plane: ReferencePlane
    ids: list[int] = Field(description="row number of each item in its split")
    labels: list[int] = Field(description="index into label_names of each item")
    label_names: list[str] = Field(description="class names (font: one per glyph)")
    points: list[list[float]] = Field(description="[n, 2]: each item on the plane")
    codes: list[list[float]] | None = Field(
        description="[n, latent.dim]: each item's code (null with ?codes=false)"
    )
    inputs: list[Any] | None = Field(
        None,
        description="with ?inputs=true: the items, as 0-255 pixels [n, H, W] (image models) "
        "or raw values [n, features] (tabular models)",
    )


def install_webui(app: FastAPI) -> None:
    """Add ``/`` (the web app), ``/web/*`` (its files), ``/docs``, ``/redoc`` and
    ``GET /models/{name}/reference``."""

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8")

    vendored = _gzipped(WEB_DIR / "vendor")
    # The bundles' URLs carry their checksum (?v=): a browser keeps them for good, and an
    # upgrade (make web-vendor) changes the URL.
    versions = _versions(WEB_DIR / "vendor")

    def page(template: str, request: Request) -> Response:
        prefix = _prefix(request)
        urls = {key: f"{prefix}/vendor/{name}?v={versions[name]}" for key, name in _BUNDLES.items()}
        return HTMLResponse(template.format(prefix=prefix, title=app.title, **urls))

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> Response:
        return page(_SWAGGER, request)

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> Response:
        return page(_REDOC, request)

    @app.get(
        "/models/{name}/reference",
        tags=["models"],
        responses=responses(ReferenceResponse, 404, 422, 503),
    )
    async def get_reference(
        name: str,
        repository: RepositoryDep,
        inputs: bool = False,
        limit: Annotated[int | None, Query(ge=1, description="only the first items")] = None,
        codes: Annotated[
            bool, Query(description="false: leave the codes out (the map needs the points only)")
        ] = True,
    ) -> Response:
        """The model's reference set (codes, labels, a 2-D map) for the web app's latent map."""
        runtime = repository.get(name)
        ref = load_reference(runtime.model_dir)
        if ref is None:
            raise ModelNotFound(f"model '{name}' has no reference set ({REFERENCE_FILE})")
        fields = ref.fields(inputs=inputs, limit=limit, codes=codes)
        return json_response({"model": runtime.name, "version": runtime.version, **fields})

    @app.get(STATIC_PREFIX + "/vendor/{path:path}", include_in_schema=False)
    async def vendor(path: str, request: Request) -> Response:
        """The vendored bundles, stored gzipped: sent as they are (Content-Encoding: gzip),
        or unpacked for the rare client that does not take gzip. Asked for by the URL the
        docs pages give (``?v=`` its checksum), one is cached for a year, never revalidated."""
        found = vendored.get(path)
        if found is None:
            return await static(request.scope, path)
        media = mimetypes.guess_type(path)[0] or "application/octet-stream"
        pinned = request.query_params.get("v") == versions.get(path)
        cache = "public, max-age=31536000, immutable" if pinned else "public, max-age=86400"
        headers = {"Cache-Control": cache, "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return FileResponse(found, media_type=media, headers=headers)
        body = await run_in_threadpool(lambda: gzip.decompress(found.read_bytes()))
        return Response(body, media_type=media, headers=headers)

    files = StaticFiles(directory=WEB_DIR)

    async def static(scope: Scope, path: str) -> Response:
        response: Response = await files.get_response(f"vendor/{path}", scope)
        return response

    app.mount(STATIC_PREFIX, files, name="web")


def _gzipped(root: Path) -> dict[str, Path]:
    """``name`` -> ``root/name.gz`` for every gzipped file under ``root``."""
    return {p.relative_to(root).as_posix()[: -len(".gz")]: p for p in root.rglob("*.gz")}


def _versions(root: Path) -> dict[str, str]:
    """``name`` -> the first 16 hex digits of ``root/name.gz``'s sha256, from ``SHA256SUMS``
    (which tests/service/test_webui.py checks against the files)."""
    out = {}
    for line in (root / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.partition("  ./")
        if name.endswith(".gz"):
            out[name[: -len(".gz")]] = digest[:16]
    return out


# The vendored files the docs pages load, by their placeholder in the templates below.
_BUNDLES = {
    "swagger_css": "swagger-ui/swagger-ui.css",
    "swagger_js": "swagger-ui/swagger-ui-bundle.js",
    "redoc_js": "redoc/redoc.standalone.js",
}


def has_reference(model_dir: Path) -> bool:
    return (model_dir / REFERENCE_FILE).is_file()


def _prefix(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    return html.escape(root.rstrip("/") + STATIC_PREFIX, quote=True)


# -- model cards ---------------------------------------------------------------------------


def wants_html(request: Request) -> bool:
    """HTML for browsers: ``?format=html``, or an Accept naming text/html and not markdown
    (curl's ``*/*`` and ``Accept: text/markdown`` keep getting the markdown)."""
    fmt = request.query_params.get("format")
    if fmt is not None:
        return fmt == "html"
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "text/markdown" not in accept


def card_html(name: str, markdown: str, *, prefix: str = "") -> str:
    """A card (markdown) as a page. Relative image links (``loss.png``) point at
    ``/models/{name}/files/``; raw HTML in the markdown is escaped, not passed through."""
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    files = f"{prefix}/models/{name}/files/"

    def image(
        renderer: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType
    ) -> str:
        token = tokens[idx]
        src = str(token.attrGet("src") or "")
        if src and "://" not in src and not src.startswith(("/", "data:")):
            token.attrSet("src", files + src)
        return renderer.image(tokens, idx, options, env)

    md.add_render_rule("image", image)
    body = md.render(markdown)
    title = html.escape(name)
    return _CARD.format(
        title=title, body=body, static=html.escape(prefix + STATIC_PREFIX), name=title
    )


_CARD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · model card · aeserve</title>
<link rel="icon" href="{static}/favicon.svg">
<link rel="stylesheet" href="{static}/card.css">
</head><body>
<nav><a href="../../">aeserve</a> · <a href="./card?format=md">markdown</a></nav>
<article class="card" data-model="{name}">
{body}</article>
</body></html>
"""

# Both pages fetch openapi.json once their bundle has run; the preload fetches it while the
# bundle loads (the same request: mode cors, credentials same-origin, so it is used, not sent
# twice). native-scrollbars: ReDoc's own scrollbars measure the whole page once it is drawn.
_SWAGGER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · API docs</title>
<link rel="icon" href="{prefix}/favicon.svg">
<link rel="stylesheet" href="{swagger_css}">
<link rel="preload" href="openapi.json" as="fetch" crossorigin>
</head><body>
<div id="swagger-ui"></div>
<script src="{swagger_js}"></script>
<script src="{prefix}/docs.js"></script>
</body></html>
"""

_REDOC = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · API reference</title>
<link rel="icon" href="{prefix}/favicon.svg">
<style>body {{ margin: 0; }}</style>
<link rel="preload" href="openapi.json" as="fetch" crossorigin>
</head><body>
<redoc spec-url="openapi.json" hide-download-button native-scrollbars></redoc>
<script src="{redoc_js}"></script>
</body></html>
"""
