"""The operators' dashboard: one HTML page and one script, served by monitoring itself (no build
step, no CDN). The page holds no data: its script fetches monitoring's JSON endpoints with the
operator's token (``?token=`` once, then sessionStorage, or pasted) and draws SVG charts."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

STATIC = Path(__file__).resolve().parent / "static"
router = APIRouter(tags=["dashboard"])

_HEADERS = {
    # Everything comes from this origin; the token never leaves it.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


@lru_cache(maxsize=4)
def _read(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


@router.get("/dashboard", response_class=HTMLResponse, summary="Operators' dashboard (HTML)")
async def dashboard() -> HTMLResponse:
    return HTMLResponse(_read("dashboard.html"), headers=_HEADERS)


@router.get("/dashboard/app.js", include_in_schema=False)
async def dashboard_js() -> Response:
    return Response(_read("dashboard.js"), media_type="application/javascript; charset=utf-8", headers=_HEADERS)
