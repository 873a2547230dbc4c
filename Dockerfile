FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY vigil vigil
COPY bus bus
COPY ingest ingest
COPY scheduler scheduler
COPY analyzer analyzer
COPY alerts alerts
COPY web web
RUN pip install --no-cache-dir . && useradd --system vigil
USER vigil
ENTRYPOINT ["vigil"]
