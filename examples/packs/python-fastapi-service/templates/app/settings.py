from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="{{ENV_PREFIX}}_", env_file=".env")

    service_name: str = "{{service_name}}"
    log_level: str = "INFO"
    debug: bool = False


@lru_cache
def get_settings() -> Settings:
    return Settings()
