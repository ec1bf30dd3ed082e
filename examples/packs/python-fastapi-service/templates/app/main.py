import logging

from fastapi import Depends, FastAPI

from .settings import Settings, get_settings

settings = get_settings()
logging.basicConfig(
    level=settings.log_level,
    format="%(asctime)s %(levelname)s %(name)s %(message)s",
)
log = logging.getLogger("{{service_name}}")

app = FastAPI(title="{{service_name}}", debug=settings.debug)


@app.on_event("startup")
async def on_startup() -> None:
    log.info("starting %s", settings.service_name)


@app.get("/health")
async def health(settings: Settings = Depends(get_settings)) -> dict[str, str]:
    return {"status": "ok", "service": settings.service_name}
