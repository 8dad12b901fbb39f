# One image for web (gunicorn), the Celery worker, Celery beat and the one-shot
# migrate service in docker-compose.yml; each sets its own command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Unprivileged runtime user; /app/var is its only writable project directory.
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, so code changes reuse this layer.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
RUN mkdir -p /app/var && chown -R app:app /app/var \
 && chmod +x /app/scripts/*.sh

USER app

# Static files into STATIC_ROOT (var/static). Settings refuse to load without a
# secret key when DEBUG is off, so this RUN line alone gets a build-only dummy;
# it is not an ENV, so it is not in the image's environment at runtime (the
# real key comes from .env).
RUN DJANGO_DEBUG=false \
    DJANGO_SECRET_KEY=build-only-collectstatic-dummy-key-never-used-at-runtime-0123456789 \
    python manage.py collectstatic --noinput

EXPOSE 8000

# Default command: the web process (compose sets it explicitly as well).
CMD ["gunicorn", "backoffice.wsgi:application", "--bind", "0.0.0.0:8000", "--worker-tmp-dir", "/dev/shm", "--access-logfile", "-"]
