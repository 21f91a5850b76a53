import pytest
from pydantic import ValidationError

from shared.settings import DEV_JWT_SECRET, ServiceSettings


def test_embedded_default_database_is_a_sqlite_file_per_service(tmp_path):
    s = ServiceSettings(service_name="payments", data_dir=tmp_path)
    assert s.database_url == f"sqlite+aiosqlite:///{tmp_path}/payments.db"


def test_environment_variables_are_read(monkeypatch):
    monkeypatch.setenv("EVENT_BUS", "kafka")
    monkeypatch.setenv("KAFKA_IDEMPOTENCE", "false")
    monkeypatch.setenv("AUTH_JWT_SECRET", "s" * 40)
    s = ServiceSettings()
    assert s.event_bus == "kafka" and s.kafka_idempotence is False and s.auth_jwt_secret == "s" * 40


@pytest.mark.parametrize("secret,key", [(DEV_JWT_SECRET, "k" * 40), ("short", "k" * 40), ("s" * 40, "short")])
def test_production_refuses_default_or_short_secrets(secret, key):
    with pytest.raises(ValidationError):
        ServiceSettings(environment="production", auth_jwt_secret=secret, data_encryption_key=key)


def test_production_accepts_real_secrets():
    ServiceSettings(environment="production", auth_jwt_secret="s" * 40, data_encryption_key="k" * 40)
