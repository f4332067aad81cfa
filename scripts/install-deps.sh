#!/usr/bin/env bash
# Installs what Cairn needs to build, test and run, from Debian's archive. Idempotent: it asks apt only
# for what is missing, and runs `apt-get update` only when something is.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libsqlite3-dev
  libssl-dev openssl zlib1g-dev libbrotli-dev libgtest-dev libgmock-dev
  # The server's HTTP layer: Boost.Beast and Asio (Debian's default Boost, the one python3-sklearn's
  # dependencies pull in: libboost1.81-dev conflicts with it).
  libboost-dev
  # Fuzzing: clang's libFuzzer and sanitizer runtimes.
  clang-14 libclang-rt-14-dev
  # The formatter CI checks the tree with (scripts/check-format.sh).
  clang-format-14
  # Jobs run `python` as Azure ML's do; in the sandbox a job sees the system's tools, not root's home (pyenv).
  python-is-python3
  python3 python3-pytest python3-yaml python3-sklearn python3-numpy
  # --query is checked differentially against the JMESPath implementation az itself uses.
  python3-jmespath
  procps curl util-linux iproute2
  # Distributed jobs and the Slurm compute: the tests run real frameworks and a real Slurm cluster.
  openmpi-bin python3-mpi4py python3-torch slurm-wlm munge
  # The team server's OpenID Connect sign-in is tested against a real provider built on Authlib (Flask).
  python3-authlib python3-flask python3-requests
  # Team tests act as several real Unix users (useradd, setpriv).
  passwd
  # The studio's browser tests: Debian's Chromium, driven by playwright-core.
  chromium
  # Container environments: podman with runc (see docs/environments.md); tests make their image with
  # debootstrap, since no registry is reachable.
  # catatonit is podman's --init (a recommends, which --no-install-recommends drops).
  podman runc debootstrap catatonit
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# Node.js runs the independent MLflow client in the tests; the machine image may ship its own.
command -v node > /dev/null || missing+=(nodejs)
command -v npm > /dev/null || missing+=(npm)

if ((${#missing[@]} > 0)); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# The npm package `mlflow` (an independent client) for the tracking tests.
here="$(cd "$(dirname "$0")/.." && pwd)"
if [[ ! -d "$here/tests/node/node_modules/mlflow" ]]; then
  (cd "$here/tests/node" && npm install --no-audit --no-fund --silent >&2)
fi
# playwright-core for the studio's tests in a real browser.
if [[ ! -d "$here/tests/browser/node_modules/playwright-core" ]]; then
  (cd "$here/tests/browser" && npm install --no-audit --no-fund --silent >&2)
fi
# The image the container-environment tests run jobs in (debootstrap + podman import; once).
bash "$here/scripts/make-test-image.sh"
