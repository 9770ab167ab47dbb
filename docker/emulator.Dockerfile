# syntax=docker/dockerfile:1
# moto's server with the very versions the test suite pins (scripts/moto-requirements.txt),
# plus the resource set-up script: the compose file's `moto` profile for developers without a
# LocalStack account, and the `init` step of both profiles (boto3 comes with moto).
#   docker build -f docker/emulator.Dockerfile -t vod/emulator .
FROM python:3.11-slim-bookworm
COPY scripts/moto-requirements.txt /opt/vod/moto-requirements.txt
RUN pip install --no-cache-dir -r /opt/vod/moto-requirements.txt
COPY scripts/lib/local_stack.py /opt/vod/local_stack.py
RUN useradd --system --uid 10001 --no-create-home emulator
USER 10001:10001
EXPOSE 4566
# The same port as LocalStack's, so both profiles use AWS_ENDPOINT_URL=http://aws:4566.
HEALTHCHECK --interval=5s --timeout=3s --retries=20 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:4566/moto-api/')"]
CMD ["moto_server", "-H", "0.0.0.0", "-p", "4566"]
