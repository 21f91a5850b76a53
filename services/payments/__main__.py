"""`python -m services.payments`: migrations run at start-up (alembic upgrade head), then uvicorn on :8003."""
from shared.serve import serve

from services.payments.app import create_app

serve(create_app, 8003)
