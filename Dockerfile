# syntax=docker/dockerfile:1
# The ecs-gitops agent as a container image.
#
#   docker build -t ecs-gitops --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#   docker run --rm -p 8080:8080 -e ECS_GITOPS_SOURCE_REPO=https://github.com/acme/deployments.git \
#     -e ECS_GITOPS_GIT_TOKEN -e AWS_REGION=eu-west-1 ecs-gitops          # runs `ecs-gitops run`
#
# Configuration: a file named by ECS_GITOPS_CONFIG (mount it, e.g. at /etc/ecs-gitops/config.yaml), and
# any field as ECS_GITOPS_<SECTION>_<FIELD> (schemas/agent-config.schema.json). State and the git clone
# live in ECS_GITOPS_DATA_DIR (/var/lib/ecs-gitops), owned by the non-root user the agent runs as.

# The base, pinned by digest: python:3.11-slim-bookworm (the multi-platform index digest). Bump tag and
# digest together.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# -- build: install the agent and its dependencies into a virtualenv -------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ecs-gitops
WORKDIR /src
# The dependencies first, in a layer of their own, from the lock file alone: a change to the agent's code
# reuses this layer. The lock is complete (pip freeze of a clean install), hence --no-deps.
COPY requirements.lock ./
RUN /opt/ecs-gitops/bin/pip install --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY agent ./agent
# The agent itself, with no extras (no sandbox). A non-editable install carries the JSON Schemas to
# /opt/ecs-gitops/share/ecs-gitops/schemas. pip check fails the build if the lock misses a dependency.
RUN /opt/ecs-gitops/bin/pip install --no-deps . \
 && /opt/ecs-gitops/bin/pip check \
 && /opt/ecs-gitops/bin/ecs-gitops --help > /dev/null

# -- runtime: the virtualenv, git and ssh; nothing to compile, no build tools ------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="ecs-gitops" \
      org.opencontainers.image.description="A GitOps agent for Amazon ECS: manifests in Git, plans, progressive rollouts, commit statuses." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/acme/ecs-gitops" \
      org.opencontainers.image.documentation="https://github.com/acme/ecs-gitops/tree/main/docs" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm" \
      org.opencontainers.image.base.digest="sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91"
# git >= 2.31 (Debian bookworm ships 2.39) reads manifests and writes notes; openssh-client serves
# ssh:// and git@ sources and its ssh-keygen checks signed commits (verify.mode ssh); gpg checks them in
# verify.mode gpg. Versions come from the pinned Debian release, hence no per-package pins.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client gpg ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && git --version
RUN groupadd --system --gid 10001 ecs-gitops \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/ecs-gitops --create-home \
    --shell /usr/sbin/nologin ecs-gitops
COPY --from=build /opt/ecs-gitops /opt/ecs-gitops
ENV PATH=/opt/ecs-gitops/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ECS_GITOPS_DATA_DIR=/var/lib/ecs-gitops \
    ECS_GITOPS_SERVER_HOST=0.0.0.0 \
    ECS_GITOPS_SERVER_PORT=8080 \
    ECS_GITOPS_LOG_FORMAT=json
USER 10001:10001
WORKDIR /var/lib/ecs-gitops
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ECS_GITOPS_SERVER_PORT', '8080'), timeout=3)"]
ENTRYPOINT ["ecs-gitops"]
CMD ["run"]
