"""The suite's fresh databases are copies of each service's migrated schema (tests/databases.py):
a copy is at the head revision, and a database that is not fresh is migrated for real."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from services.intake.app import SERVICE_DIR
from shared.migrations import alembic_config
from tests.databases import SchemaTemplates
from tests.intake.conftest import intake


def _head(service_dir) -> str:  # type: ignore[no-untyped-def]
    return ScriptDirectory.from_config(alembic_config(service_dir)).get_current_head()  # type: ignore[return-value]


async def test_a_fresh_database_is_a_copy_at_head_and_a_used_one_is_migrated(
        database_url: str, schema_templates: SchemaTemplates) -> None:
    if not schema_templates.enabled:
        pytest.skip("TEST_SCHEMA_TEMPLATES=false: every database is migrated for real")
    before = schema_templates.copies
    async with intake(database_url) as (app, _):
        async with app.state.runtime.session_factory() as s:
            version = (await s.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one()
    assert schema_templates.copies == before + 1
    assert version == _head(SERVICE_DIR)
    # the second start finds its tables: migrated for real (a no-op at head), never replaced
    async with intake(database_url):
        pass
    assert schema_templates.copies == before + 1
