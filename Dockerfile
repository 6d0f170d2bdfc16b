# syntax=docker/dockerfile:1
# Two images from one file (docker-compose.yml picks each by `target`):
#   cameras  the camera simulator: GStreamer's RTSP server under Debian's python3
#   node     the villagewatch node (the last stage, so a plain `docker build .` gives it)

FROM debian:bookworm-slim AS cameras
# The same Debian packages scripts/setup.sh installs for the simulator: the RTSP
# server through GObject introspection, and the plugins its pipelines use
# (videotestsrc/audiotestsrc: base; rtp payloaders, alawenc: good; x265enc: bad;
# x264enc: ugly).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 python3-gi \
        gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
        gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/villagewatch
COPY camsim/server.py camsim/server.py
RUN useradd --system --no-create-home camsim
USER camsim
EXPOSE 8554
# One camera by default; docker-compose.yml gives the full command with its mounts.
# The server quits when its stdin closes (it is meant to be a child process): run
# the container with stdin kept open (`docker run -i`, compose `stdin_open: true`).
CMD ["python3", "camsim/server.py", "--address", "0.0.0.0", "--port", "8554", \
     "--mounts", "[{\"name\": \"cam0\"}]"]


FROM python:3.11-slim-bookworm AS node
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# CJK font for names drawn on snapshots, as scripts/setup.sh installs for the node;
# a C compiler for the compiled send path (setup.py), gone once it is built.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        fonts-wqy-microhei gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/villagewatch
COPY pyproject.toml setup.py ./
COPY ingest ingest
COPY relay relay
COPY camsim camsim
RUN pip install . \
    && python -P -c "from relay.webrtc import srtp; assert srtp.COMPILED, 'not compiled'" \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && useradd --system --home-dir /var/lib/villagewatch --create-home villagewatch
# The node's state (alert history and the like) lives here; compose puts a volume on it.
WORKDIR /var/lib/villagewatch
USER villagewatch
EXPOSE 8080
CMD ["python", "-m", "relay", "run", "--config", "/etc/villagewatch/config.yaml", \
     "--listen", "0.0.0.0:8080"]
