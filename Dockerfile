# The collector's image for Cloud Run: gunicorn with the shipped gunicorn.conf.py.
FROM python:3.11-slim

# Unbuffered: every log line reaches Cloud Logging at once, even if the instance is stopped.
# GUNICORN_HOST: a container is reached through its own network namespace, on Cloud Run and
# under `docker run -p` alike (outside a container gunicorn binds loopback unless on Cloud Run).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GUNICORN_HOST=0.0.0.0

WORKDIR /app

# The service's own user; the code stays owned by root, so the service cannot change it.
RUN groupadd --system app && useradd --system --gid app --no-create-home app

# Requirements before the code: a code change reuses the cached dependency layer.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY . .

USER app

# Cloud Run sets PORT; gunicorn.conf.py binds $GUNICORN_HOST:$PORT (8080 when unset).
EXPOSE 8080
CMD ["gunicorn", "--config", "gunicorn.conf.py", "main:app"]
