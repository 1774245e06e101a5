# One image for web, worker, beat and the local provider; the command picks the role.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH="/opt/venv/bin:$PATH"

RUN pip install --no-cache-dir uv==0.13.8 \
    && groupadd --system app && useradd --system --gid app --home-dir /app app

WORKDIR /app
COPY pyproject.toml uv.lock ./
# Production image: runtime dependencies only (no embedded servers, test tools or browsers).
RUN uv sync --frozen --no-dev --no-install-project

COPY . .
# The same script `make prod-check` runs: hashed names, the manifest, gzip and brotli copies.
RUN deploy/build-static

USER app
EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
