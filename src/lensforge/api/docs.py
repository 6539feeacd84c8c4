"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served
whole by LensForge: they work without internet and run no third party's code.

The assets are vendored, pinned files with their licences (``docs_assets/``, listed in
:data:`VENDORED`), answered from memory with an ETag under ``/docs/assets/``. Each page
loads only this server's files: no CDN, no Google Fonts. A Content-Security-Policy that
names no other origin makes the browser refuse anything else, and the pages carry no inline
script (Swagger UI's start-up is ``docs-init.js``, reading the document's URL from the page).
"""

from __future__ import annotations

import html
from typing import Final

from fastapi import APIRouter, Request, Response

from lensforge.api.auth import PUBLIC, requires
from lensforge.api.static import Assets

ASSETS_PATH: Final = "/docs/assets"
# What is vendored, from which npm package at which version (LICENSE-* and NOTICE beside).
VENDORED: Final = {
    "swagger-ui-dist": "5.32.0",  # swagger-ui-bundle.js, swagger-ui.css, oauth2-redirect.js
    "redoc": "2.5.2",  # redoc.standalone.js
}
MEDIA_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".txt": "text/plain; charset=utf-8",
}
# Only this server's origin. Styles may also be inline: Swagger UI and ReDoc (its
# styled-components) write <style> elements at run time; that loads nothing from elsewhere.
# ReDoc's search index runs in a Worker it starts from a blob: URL built on the page.
# ReDoc 2.x always shows Redocly's logo from cdn.redoc.ly in its sidebar (no option hides
# it): this policy refuses it before any request is made, and ReDoc hides the broken image.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

_SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API documentation</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{assets}/docs-init.js"></script>
</body>
</html>
"""

_REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API reference</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
<redoc spec-url="{openapi}"></redoc>
<script src="{assets}/redoc.standalone.js"></script>
</body>
</html>
"""

_OAUTH2_PAGE = """<!doctype html>
<html lang="en">
<body>
<script src="{assets}/oauth2-redirect.js"></script>
</body>
</html>
"""


def build_router(title: str, openapi_url: str = "/openapi.json") -> APIRouter:
    """``/docs``, ``/docs/oauth2-redirect``, ``/redoc`` and their assets; public, undocumented."""
    router = APIRouter(include_in_schema=False)
    assets = Assets(
        "lensforge.api", "docs_assets", MEDIA_TYPES, SECURITY_HEADERS, "documentation asset"
    )
    public = requires(PUBLIC)

    def page(template: str, request: Request) -> Response:
        root = request.scope.get("root_path", "").rstrip("/")
        body = template.format(
            title=html.escape(title),
            assets=html.escape(root + ASSETS_PATH),
            openapi=html.escape(root + openapi_url),
        )
        return Response(body, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)

    @router.get("/docs", openapi_extra=public)
    async def swagger_ui(request: Request) -> Response:
        return page(_SWAGGER_PAGE, request)

    @router.get("/docs/oauth2-redirect", openapi_extra=public)
    async def swagger_ui_redirect(request: Request) -> Response:
        return page(_OAUTH2_PAGE, request)

    @router.get("/redoc", openapi_extra=public)
    async def redoc(request: Request) -> Response:
        return page(_REDOC_PAGE, request)

    @router.get(ASSETS_PATH + "/{name}", openapi_extra=public)
    async def docs_asset(name: str, request: Request) -> Response:
        return assets.response(name, request)

    return router
