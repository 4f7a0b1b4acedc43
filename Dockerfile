FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY syncbridge ./syncbridge
COPY webhooks ./webhooks
COPY consumers ./consumers
COPY producers ./producers
COPY contracts ./contracts
COPY simulators ./simulators
RUN pip install --no-cache-dir . && useradd --system --uid 10001 syncbridge
# The DailyUp drop folder (the `dailyup` volume of docker-compose.yml): a new named volume
# takes this folder's owner, so the non-root user can write its inbox/, archive/ and rejected/.
RUN mkdir -p /var/lib/syncbridge/dailyup /var/lib/syncbridge/metrics && chown -R syncbridge:syncbridge /var/lib/syncbridge
ENV SYNCBRIDGE_DAILYUP_DIR=/var/lib/syncbridge/dailyup
USER syncbridge
EXPOSE 8000
CMD ["syncbridge", "web"]
