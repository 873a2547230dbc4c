"""/docs: Swagger UI served from this server (the swagger-ui-bundle package's files) with its
start-up script as a file, so it works under the dashboard's strict CSP (no CDN, no inline
script). The page needs a session or token like every route but /healthz."""

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from web.auth import Principal
from web.deps import Access

STATIC = Path(__file__).parent / "static"
ASSETS = StaticFiles(directory=swagger_ui_path)


def docs_router(access: Access) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    Viewer = Annotated[Principal, Depends(access.viewer)]

    @r.get("/docs")
    async def docs(who: Viewer) -> FileResponse:
        return FileResponse(STATIC / "docs.html", headers={"Cache-Control": "no-cache"})

    return r
