"""A Starlette application served by uvicorn, with an ``AsyncConnectionPool``."""
