# syntax=docker/dockerfile:1
# One image for every notifq component; the Helm chart picks the command
# (notifq-operator, notifq-api, notifq-worker, notifq-migrate upgrade).
#   docker build -t notifq:dev .
# Without Docker or a registry (hack/images.py does this for the local cluster):
#   buildah bud --isolation chroot --build-arg PYTHON_IMAGE=localhost/notifq-base:<key> -t notifq:dev .
# where the base is Debian bookworm's own python3 + python3-venv (debootstrap).
# Stages: build (venv + wheel install) -> base (runtime) -> dev (Tilt live update)
#         -> runtime (the default, last stage).
# Any Python 3.11 image on Debian bookworm works as the base: the official
# python:3.11-slim-bookworm or a debootstrap of bookworm with python3-venv.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# A CA bundle for reaching the package index through a TLS-intercepting proxy,
# mounted at build time, never copied into the image (hack/images.py passes the
# host's when it has one).
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/notifq
WORKDIR /src
# The locked, hash-checked dependencies first (a layer that changes only with the lock),
# then notifq itself without resolving anything again.
COPY requirements/runtime.txt requirements/runtime.txt
RUN /opt/notifq/bin/pip install --no-cache-dir --require-hashes -r requirements/runtime.txt
# notifq/operator, notifq/worker and notifq/api are relative symlinks to the
# top-level folders; COPY keeps them and the (non-editable) wheel build follows them.
# pyproject.toml names README.md as the long description: an empty one is enough, so
# that the image (and its cache key in hack/images.py) does not change with the docs.
COPY pyproject.toml ./
RUN touch README.md
COPY notifq/ notifq/
COPY operator/ operator/
COPY worker/ worker/
COPY api/ api/
# -I: `python -m` would put the working directory first on sys.path, and /src/operator
# would shadow the standard library's operator module. -x: modules some packages ship
# for newer Pythons only (e.g. coredis/_py_312_typing.py) are never imported on 3.11.
RUN /opt/notifq/bin/pip install --no-cache-dir --no-deps . \
 && /opt/notifq/bin/python -I -m compileall -q -x '_py_?3_?1[2-9]' /opt/notifq/lib

FROM ${PYTHON_IMAGE} AS base
LABEL org.opencontainers.image.title="notifq" \
      org.opencontainers.image.description="Kubernetes-native notification campaigns" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/notifq/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
RUN groupadd --system --gid 10001 notifq \
 && useradd --system --uid 10001 --gid notifq --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin notifq
COPY --from=build /opt/notifq /opt/notifq
WORKDIR /tmp
USER 10001:10001
# api 8000, operator liveness 8080, metrics 9090 (operator) / 9091 (worker)
EXPOSE 8000 8080 9090 9091
# No ENTRYPOINT: the chart passes the command as `args`.
CMD ["notifq-api"]

# Tilt's live update syncs Python sources into site-packages and restarts the
# process: the package directory must be writable by the app user there.
FROM base AS dev
USER 0
RUN chown -R 10001:10001 /opt/notifq/lib/python3.11/site-packages/notifq \
 && install -o 10001 -g 10001 -m 0644 /dev/null /.restart-proc
USER 10001:10001

FROM base AS runtime
