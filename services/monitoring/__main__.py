"""`python -m services.monitoring`: migrations run at start-up (alembic upgrade head), then uvicorn on :8004."""
from shared.serve import serve

from services.monitoring.app import create_app

serve(create_app, 8004)
