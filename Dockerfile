# Image of the riskstream worker and command line.
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY agents ./agents
COPY examples ./examples
RUN pip install --no-cache-dir '.[cdnow]'

# The worker keeps its RocksDB tables here; mount a volume to keep them
# across container restarts (the changelog topics restore them otherwise).
ENV RISKSTREAM_DATA_DIR=/var/lib/riskstream \
    RISKSTREAM_WEB_HOST=0.0.0.0 \
    RISKSTREAM_LOG_FORMAT=json
VOLUME /var/lib/riskstream
EXPOSE 6066 9108
ENTRYPOINT ["riskstream"]
CMD ["worker"]
