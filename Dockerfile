# An exact Python and Debian release: a rebuild gets the same base until this line changes.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --create-home --uid 10001 conveyor && mkdir -p var && chown -R conveyor var
USER conveyor

EXPOSE 8000 5555
# The web by default; docker-compose.yml and deploy/kubernetes give each service its own
# command (a Procfile line's), run directly so that it receives the stop signal itself.
CMD ["python", "-m", "gevent.monkey", "--module", "gunicorn", "wsgi:app", "--bind", "0.0.0.0:8000", \
     "--worker-class", "gevent", "--graceful-timeout", "30"]
