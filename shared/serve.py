"""Production entrypoint of one service: migrate, then serve with uvicorn."""
from __future__ import annotations

import os
from typing import Callable

import uvicorn
from fastapi import FastAPI


def serve(create_app: Callable[[], FastAPI], default_port: int) -> None:
    app = create_app()
    uvicorn.run(app, host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", default_port)),
                log_config=None, access_log=False)
