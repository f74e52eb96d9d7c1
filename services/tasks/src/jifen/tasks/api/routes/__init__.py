"""One APIRouter per resource; ``api/app.py`` includes them in the order of ``ROUTERS``."""
