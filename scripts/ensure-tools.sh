#!/usr/bin/env bash
# Installs the development tools this project needs, only those missing.
# Fast (no network) when everything is present.
#
#   ./scripts/ensure-tools.sh            moto server, cargo-lambda, cfn-lint, rustfmt, clippy,
#                                        schemathesis and openapi-spec-validator (.local/stvenv)
#   SAM=1 ./scripts/ensure-tools.sh      ... and the SAM CLI in .local/samvenv
#   RELEASE=1 ./scripts/ensure-tools.sh  ... and the aarch64 Rust target (for sam build / cargo lambda build --arm64)
#   FUZZ=1 ./scripts/ensure-tools.sh     ... and cargo-fuzz (for scripts/fuzz.sh)
#
# Options --sam / --lint, --release and --fuzz are the same as SAM=1,
# RELEASE=1 and FUZZ=1.
set -euo pipefail
cd "$(dirname "$0")/.."

want_sam="${SAM:-0}"
want_release="${RELEASE:-0}"
want_fuzz="${FUZZ:-0}"
for arg in "$@"; do
  case "$arg" in
    --sam | --lint) want_sam=1 ;;
    --release) want_release=1 ;;
    --fuzz) want_fuzz=1 ;;
    *) echo "ensure-tools.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-python3}"
installed=0

say() { echo "ensure-tools: $*" >&2; }

pip_install() {
  say "installing $*"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check "$@"
  installed=1
}

has_py_modules() {
  "$PYTHON" - "$@" <<'PY'
import importlib.util, sys
sys.exit(0 if all(importlib.util.find_spec(m) for m in sys.argv[1:]) else 1)
PY
}

# Local DynamoDB (scripts/moto_server.py) and boto3 for checks. waitress
# serves it with connections kept open (werkzeug closes every one).
WAITRESS_VERSION=3.0.2
if ! has_py_modules moto flask flask_cors werkzeug boto3; then
  pip_install 'moto[server]'
fi
if ! "$PYTHON" -c "import importlib.metadata as m, sys; sys.exit(m.version('waitress') != sys.argv[1])" \
  "$WAITRESS_VERSION" 2>/dev/null; then
  pip_install "waitress==$WAITRESS_VERSION"
fi

# cargo lambda (local runtime for ./scripts/dev.sh, and sam build).
if ! command -v cargo-lambda >/dev/null 2>&1; then
  pip_install cargo-lambda
fi

# Template linter.
if ! command -v cfn-lint >/dev/null 2>&1; then
  pip_install cfn-lint
fi

# OpenAPI linter and contract tester (scripts/openapi-check.sh), in their
# own project-local venv so that their dependencies do not meet moto's.
SCHEMATHESIS_VERSION=4.32.5
OPENAPI_VALIDATOR_VERSION=0.9.0
if [ ! -x .local/stvenv/bin/schemathesis ] || [ ! -x .local/stvenv/bin/openapi-spec-validator ] \
  || ! .local/stvenv/bin/schemathesis --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  say "installing schemathesis and openapi-spec-validator into .local/stvenv"
  mkdir -p .local
  "$PYTHON" -m venv .local/stvenv
  .local/stvenv/bin/python -m pip install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" "openapi-spec-validator==$OPENAPI_VALIDATOR_VERSION"
fi

if [ "$installed" = 1 ] && command -v pyenv >/dev/null 2>&1; then
  pyenv rehash || true
fi

# Rust components used by ./scripts/test.sh.
if ! cargo fmt --version >/dev/null 2>&1; then
  say "adding rustfmt"
  rustup component add rustfmt
fi
if ! cargo clippy --version >/dev/null 2>&1; then
  say "adding clippy"
  rustup component add clippy
fi

# SAM CLI, project-local (.local/ is git-ignored).
if [ "$want_sam" = 1 ] && [ ! -x .local/samvenv/bin/sam ]; then
  say "installing the SAM CLI into .local/samvenv"
  mkdir -p .local
  "$PYTHON" -m venv .local/samvenv
  .local/samvenv/bin/python -m pip install --quiet --disable-pip-version-check aws-sam-cli
fi

# Cross target for release builds only.
if [ "$want_release" = 1 ] && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  say "adding the aarch64-unknown-linux-gnu target"
  rustup target add aarch64-unknown-linux-gnu
fi

# cargo-fuzz (from crates.io) for ./scripts/fuzz.sh, which builds with the
# nightly toolchain when one is installed and else with this one.
if [ "$want_fuzz" = 1 ] && ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz"
  cargo install --locked --quiet cargo-fuzz
fi
