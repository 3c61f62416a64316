#!/usr/bin/env bash
# The README's second command (and CI's, through .ci/run): makes the checkout
# ready (tools/setup.sh), fetches the default model and requantizes it, checks
# formatting and the Python tools, checks that every CTest test has a timeout,
# then runs every CTest test in build/ (labels unit, sanitize, integration,
# fuzz, deploy, tsan). Exits non-zero on any failure. Extra arguments go to
# ctest, e.g. `tools/test.sh -L unit` or `tools/test.sh -R Gguf`.

set -euo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh
RELAYOUT_SMOLLM2_GGUF=$(tools/fetch_default_model.sh)
export RELAYOUT_SMOLLM2_GGUF
# The same model in two K-quant mixes, for the perplexity check against
# llama.cpp (tests/llamacpp_parity_test.cc): made from the Q4_1 file by our own
# quantizer, once per quantizer change.
RELAYOUT_SMOLLM2_Q4_K_M_GGUF=$(tools/requantize_default_model.sh Q4_K_M)
RELAYOUT_SMOLLM2_Q6_K_GGUF=$(tools/requantize_default_model.sh Q6_K)
export RELAYOUT_SMOLLM2_Q4_K_M_GGUF RELAYOUT_SMOLLM2_Q6_K_GGUF
# Real models' chat templates (read, never copied), for the chat-template
# engine's check against jinja2 (engine.chat_template_corpus).
RELAYOUT_CHAT_TEMPLATE_DIR=$(tools/fetch_chat_templates.sh)
export RELAYOUT_CHAT_TEMPLATE_DIR

tools/check_format.sh

echo "test: tools/gen_checkpoint_test.py" >&2
.venv/bin/python tools/gen_checkpoint_test.py
echo "test: tools/gguf_quants_test.py" >&2
.venv/bin/python tools/gguf_quants_test.py
echo "test: tools/check_layering_test.py" >&2
.venv/bin/python tools/check_layering_test.py

# Under CI a test that skips for lack of its data fails instead
# (tests/testing/require_test_data.cc): the set-up is part of what is tested.
if [[ "${CI:-}" == "true" ]]; then
  export RELAYOUT_REQUIRE_TEST_DATA=1
fi

echo "test: every CTest test has a timeout" >&2
ctest --test-dir build --show-only=json-v1 | .venv/bin/python tools/check_test_timeouts.py

echo "test: ctest in build/" >&2
exec ctest --test-dir build --output-on-failure --no-tests=error -j"$(nproc)" "$@"
