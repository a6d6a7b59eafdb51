#!/usr/bin/env bash
# Install the npm tools the GitHub contract test needs into a cache folder (not the repo's root).
#   @octokit/openapi      GitHub's official OpenAPI description of its REST API
#   @stoplight/prism-cli  a mock server that validates requests against an OpenAPI document
# Does nothing (exit 0) when npm is absent: the contract test then skips with a printed reason.
set -euo pipefail

OCTOKIT_OPENAPI_VERSION="23.0.2"
PRISM_CLI_VERSION="5.16.0"
PREFIX="${ECS_GITOPS_NPM_CACHE:-.cache/npm}"

if ! command -v npm >/dev/null 2>&1; then
  echo "npm-tools: npm not found; skipping (the GitHub contract test will be skipped)" >&2
  exit 0
fi

installed_version() {
  # Prints the installed version of package $1 under $PREFIX, or nothing.
  local manifest="$PREFIX/node_modules/$1/package.json"
  [[ -f "$manifest" ]] || return 0
  sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$manifest" | head -n 1
}

if [[ "$(installed_version @octokit/openapi)" == "$OCTOKIT_OPENAPI_VERSION" \
   && "$(installed_version @stoplight/prism-cli)" == "$PRISM_CLI_VERSION" \
   && -x "$PREFIX/node_modules/.bin/prism" ]]; then
  exit 0
fi

mkdir -p "$PREFIX"
npm install --no-audit --no-fund --loglevel=error --prefix "$PREFIX" \
  "@octokit/openapi@$OCTOKIT_OPENAPI_VERSION" \
  "@stoplight/prism-cli@$PRISM_CLI_VERSION"
