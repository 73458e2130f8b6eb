FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --create-home --uid 10001 conveyor && mkdir -p var && chown -R conveyor var
USER conveyor

EXPOSE 8000 5555
# Every service runs one line of the Procfile (see docker-compose.yml).
CMD ["honcho", "start", "--no-prefix", "--port", "8000", "web"]
