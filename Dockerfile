# Image of the riskstream worker and command line.
FROM python:3.11.13-slim-bookworm

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY agents ./agents
COPY examples ./examples
RUN pip install --no-cache-dir '.[cdnow]'

# The worker runs as an unprivileged user that owns its data folder, so a
# named volume or a Kubernetes volume with fsGroup 10001 is writable.
RUN useradd --system --uid 10001 --no-create-home riskstream \
    && mkdir -p /var/lib/riskstream \
    && chown riskstream /var/lib/riskstream
USER 10001

# The worker keeps its RocksDB tables here; mount a volume to keep them
# across container restarts (the changelog topics restore them otherwise).
# Both servers listen on every address of the container, so that Prometheus
# and the other workers reach them; docs/configuration.md lists the settings.
ENV RISKSTREAM_DATA_DIR=/var/lib/riskstream \
    RISKSTREAM_WEB_HOST=0.0.0.0 \
    RISKSTREAM_METRICS_HOST=0.0.0.0 \
    RISKSTREAM_LOG_FORMAT=json
VOLUME /var/lib/riskstream
EXPOSE 6066 9108
ENTRYPOINT ["riskstream"]
CMD ["worker"]
