FROM python:3.11-slim
WORKDIR /app
# The same versions the tests passed with (requirements.lock, from `./run.sh lock`).
COPY pyproject.toml README.md requirements.lock ./
COPY vigil vigil
COPY bus bus
COPY ingest ingest
COPY scheduler scheduler
COPY analyzer analyzer
COPY alerts alerts
COPY web web
RUN PIP_CONSTRAINT=/app/requirements.lock pip install --no-cache-dir . && useradd --system vigil
USER vigil
ENTRYPOINT ["vigil"]
