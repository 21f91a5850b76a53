from shared.messaging.tables import metadata as messaging_metadata
from shared.migrations import run_env
from services.eligibility.models import metadata
from services.eligibility.settings import Settings

run_env([metadata, messaging_metadata], lambda: Settings().database_url)
