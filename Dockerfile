# APEX web / worker image. Java 17 is here for the Spark data pipeline.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    APEX_DATA_DIR=/data \
    SPARK_LOCAL_IP=127.0.0.1

RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless curl libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
RUN useradd --create-home --uid 1000 apex \
    && mkdir -p /data \
    && chown -R apex:apex /data /app
USER apex

# collectstatic needs no database; a throw-away key keeps production settings happy.
RUN DJANGO_SETTINGS_MODULE=apex_site.settings.base python manage.py collectstatic --noinput -v 0

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/v1/platform/readiness || exit 1
# HTTP under granian (WSGI); docker-compose runs the websockets (uvicorn) and
# the nginx proxy beside it
CMD ["sh", "-c", "python manage.py migrate --noinput && exec granian --interface wsgi --host 0.0.0.0 --port 8000 --workers ${WEB_CONCURRENCY:-2} --blocking-threads 4 --respawn-failed-workers --no-ws apex_site.wsgi:application"]
