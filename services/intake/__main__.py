"""`python -m services.intake`: migrations run at start-up (alembic upgrade head), then uvicorn on :8001."""
from shared.serve import serve

from services.intake.app import create_app

serve(create_app, 8001)
