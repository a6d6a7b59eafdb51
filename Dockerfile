# syntax=docker/dockerfile:1
# The ecs-gitops agent as a container image.
#
#   docker build -t ecs-gitops .
#   docker run --rm -p 8080:8080 -e ECS_GITOPS_SOURCE_REPO=https://github.com/acme/deployments.git \
#     -e ECS_GITOPS_GIT_TOKEN -e AWS_REGION=eu-west-1 ecs-gitops          # runs `ecs-gitops run`
#
# Configuration: a file named by ECS_GITOPS_CONFIG (mount it, e.g. at /etc/ecs-gitops/config.yaml), and
# any field as ECS_GITOPS_<SECTION>_<FIELD> (schemas/agent-config.schema.json). State and the git clone
# live in ECS_GITOPS_DATA_DIR (/var/lib/ecs-gitops), owned by the non-root user the agent runs as.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: install the agent and its dependencies into a virtualenv -------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ecs-gitops
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY agent ./agent
# A non-editable install carries the JSON Schemas to /opt/ecs-gitops/share/ecs-gitops/schemas.
RUN /opt/ecs-gitops/bin/pip install . \
 && /opt/ecs-gitops/bin/ecs-gitops --help > /dev/null

# -- runtime: the virtualenv, git and ssh; nothing to compile, no build tools ------------------------------
FROM ${PYTHON_IMAGE} AS runtime
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
