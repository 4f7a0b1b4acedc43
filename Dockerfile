FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY syncbridge ./syncbridge
COPY webhooks ./webhooks
COPY consumers ./consumers
COPY producers ./producers
COPY contracts ./contracts
COPY clients ./clients
COPY store ./store
COPY simulators ./simulators
RUN pip install --no-cache-dir . && useradd --system --uid 10001 syncbridge
USER syncbridge
EXPOSE 8000
CMD ["syncbridge", "web"]
