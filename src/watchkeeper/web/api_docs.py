"""`/api/docs`: Swagger UI for the OpenAPI schema, from our own static files (vendored and pinned by
scripts/vendor_assets.sh) under the pages' Content-Security-Policy: no CDN, no inline script."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from watchkeeper.web.shell import PAGE_HEADERS

router = APIRouter()

# Swagger UI starts from static/api-docs.js, which reads the schema's address from `data-openapi-url`.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Watchkeeper API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="/api/openapi.json"></div>
<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/api-docs.js"></script>
</body>
</html>
"""


@router.get("/api/docs", include_in_schema=False)
async def api_docs() -> HTMLResponse:
    return HTMLResponse(PAGE, headers=PAGE_HEADERS)
