from pydantic import AnyHttpUrl

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "intake"
    # 12345 hotline platform: where work orders are closed with the outcome (反馈, I2).
    hotline_callback_url: AnyHttpUrl | None = None
    hotline_callback_timeout_s: float = 5.0
