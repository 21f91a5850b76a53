"""`python -m services.eligibility`: migrations run at start-up (alembic upgrade head), then uvicorn on :8002."""
from shared.serve import serve

from services.eligibility.app import create_app

serve(create_app, 8002)
