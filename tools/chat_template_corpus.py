#!/usr/bin/env python3
"""Checks relayoutd's chat-template engine against the jinja2 package.

Renders every (template, message list, add_generation_prompt) case with
jinja2 exactly as Hugging Face's apply_chat_template does (an
ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks, the
loopcontrols extension and a `generation` block, its tojson filter,
raise_exception and strftime_now; variables messages, tools=None,
documents=None, add_generation_prompt, bos_token, eos_token), writes the
expected text or error of each case to a JSON file, then runs the C++ side
(engine_tests' ChatTemplateCorpusTest) on that file, which must give
byte-identical text, and an error where jinja2 gives one.

Templates: the chat templates embedded in every GGUF under --shared-dir's
models and in --extra-gguf files (tokenizer.chat_template, with the BOS and EOS
token text), tokenizer_config.json / chat_template.jinja files there, and
tests/data/chat_templates/*.jinja, and the *.jinja of each --template-dir and
of $RELAYOUT_CHAT_TEMPLATE_DIR (tools/test.sh sets it: the ~70 real models'
templates in llama-cpp-python's source distribution, tools/fetch_chat_templates.sh;
required under RELAYOUT_REQUIRE_TEST_DATA=1). None of them is copied: they are
read here.

Exit codes: 0 pass, 1 fail, 77 skip (no jinja2), or 1 instead of 77 under
RELAYOUT_REQUIRE_TEST_DATA=1.

Usage: .venv-clients/bin/python tools/chat_template_corpus.py \
    --engine-tests build/engine/engine_tests --shared-dir ../shared --out corpus.json
"""
import argparse
import datetime
import glob
import json
import os
import struct
import subprocess
import sys

SKIP = 77
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def skip_code():
    return 1 if os.environ.get("RELAYOUT_REQUIRE_TEST_DATA") == "1" else SKIP


# ---------------------------------------------------------------------------
# GGUF metadata: just enough to read the chat template and the special tokens.
# ---------------------------------------------------------------------------

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}


def read_gguf_metadata(path, wanted):
    """The metadata values whose keys are in wanted (others are skipped)."""
    out = {}
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            return out
        version = struct.unpack("<I", f.read(4))[0]
        count_fmt = "<I" if version == 1 else "<Q"
        size = struct.calcsize(count_fmt)
        struct.unpack(count_fmt, f.read(size))  # tensors
        kv_count = struct.unpack(count_fmt, f.read(size))[0]

        def read_str():
            n = struct.unpack(count_fmt, f.read(size))[0]
            return f.read(n).decode("utf-8", "replace")

        def read_value(t, keep):
            if t in _SCALARS:
                fmt = _SCALARS[t]
                v = struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
                return v
            if t == 8:
                return read_str()
            if t == 9:
                et = struct.unpack("<I", f.read(4))[0]
                n = struct.unpack(count_fmt, f.read(size))[0]
                if not keep and et in _SCALARS:
                    f.seek(n * struct.calcsize(_SCALARS[et]), 1)
                    return None
                return [read_value(et, keep) for _ in range(n)]
            raise ValueError(f"{path}: unknown GGUF type {t}")

        for _ in range(kv_count):
            key = read_str()
            t = struct.unpack("<I", f.read(4))[0]
            value = read_value(t, key in wanted)
            if key in wanted:
                out[key] = value
            if all(k in out for k in wanted):
                break
    return out


def gguf_templates(path):
    meta = read_gguf_metadata(path, {"tokenizer.chat_template", "tokenizer.ggml.tokens",
                                     "tokenizer.ggml.bos_token_id",
                                     "tokenizer.ggml.eos_token_id"})
    source = meta.get("tokenizer.chat_template")
    if not source:
        return []
    tokens = meta.get("tokenizer.ggml.tokens") or []

    def text(key):
        i = meta.get(key)
        return tokens[i] if i is not None and 0 <= i < len(tokens) else ""

    return [{"name": path, "source": source, "bos": text("tokenizer.ggml.bos_token_id"),
             "eos": text("tokenizer.ggml.eos_token_id")}]


def token_text(v):
    if isinstance(v, dict):
        return v.get("content", "")
    return v or ""


def hf_templates(path):
    folder = os.path.dirname(path)
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f) if path.endswith(".json") else {}
    except (OSError, ValueError):
        return []
    if not path.endswith(".json"):
        cfg_path = os.path.join(folder, "tokenizer_config.json")
        if os.path.exists(cfg_path):
            with open(cfg_path, encoding="utf-8") as f:
                config = json.load(f)
            if config.get("chat_template"):
                return []  # the config's own template is the one served
        with open(path, encoding="utf-8") as f:
            config = dict(config, chat_template=f.read())
    source = config.get("chat_template")
    bos, eos = token_text(config.get("bos_token")), token_text(config.get("eos_token"))
    if isinstance(source, str):
        return [{"name": path, "source": source, "bos": bos, "eos": eos}]
    if isinstance(source, list):
        return [{"name": f"{path}:{t.get('name')}", "source": t.get("template", ""), "bos": bos,
                 "eos": eos} for t in source]
    return []


def collect_templates(shared_dir, extra_ggufs, template_dirs=()):
    templates = []
    models = os.path.join(shared_dir, "models")
    for path in sorted(glob.glob(os.path.join(models, "**", "*.gguf"), recursive=True)):
        templates += gguf_templates(path)
    for path in extra_ggufs:
        if path and os.path.exists(path):
            templates += gguf_templates(path)
    for pattern in ("tokenizer_config.json", "chat_template.jinja"):
        for path in sorted(glob.glob(os.path.join(models, "**", pattern), recursive=True)):
            templates += hf_templates(path)
    ours = os.path.join(ROOT, "tests", "data", "chat_templates")
    paths = sorted(glob.glob(os.path.join(ours, "*.jinja")))
    for folder in template_dirs:
        paths += sorted(glob.glob(os.path.join(folder, "*.jinja")))
    for path in paths:
        with open(path, encoding="utf-8") as f:
            templates.append({"name": os.path.relpath(path, ROOT), "source": f.read(),
                              "bos": "<s>", "eos": "</s>"})
    return templates


# ---------------------------------------------------------------------------
# Message lists
# ---------------------------------------------------------------------------

def m(role, content):
    return {"role": role, "content": content}


MESSAGE_LISTS = {
    "empty": [],
    "user": [m("user", "Hello!")],
    "system_user": [m("system", "You are a helpful assistant."), m("user", "What is 2+2?")],
    "multi_turn": [m("user", "Hi"), m("assistant", "Hello! How can I help?"),
                   m("user", "Tell me a joke."), m("assistant", "Why did the chicken...")],
    "system_multi_turn": [m("system", "Be brief."), m("user", "Hi"), m("assistant", "Hey."),
                          m("user", "Bye")],
    "assistant_last": [m("user", "Q"), m("assistant", "A")],
    "bad_order": [m("user", "one"), m("user", "two")],
    "assistant_first": [m("assistant", "I start"), m("user", "ok")],
    "unicode": [m("user", "日本語のテキスト 😀 café naïve e\u0301 Ωmega 한국어"),
                m("assistant", "Ответ: 😀👍🏽 مرحبا")],
    "quotes_newlines": [m("user", "He said \"hi\" and 'bye'\nnew line\r\nand\ttab \\ backslash"),
                        m("assistant", "{{ not a template }} {% neither %} {# nor #}")],
    "braces_and_whitespace": [m("system", "  padded system  \n"), m("user", "\n\n  lots of space  \n"),
                              m("assistant", "}}{{%}")],
    "tool_role": [m("user", "What's the weather?"), m("tool", "{\"temp\": 21}"),
                  m("assistant", "It is 21 degrees.")],
    "empty_content": [m("system", ""), m("user", "")],
    "long": [m("user" if i % 2 == 0 else "assistant", f"message {i} " + "word " * (i % 7))
             for i in range(24)],
}


# ---------------------------------------------------------------------------
# jinja2, as apply_chat_template runs it
# ---------------------------------------------------------------------------

def make_environment():
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationBlock(Extension):
        """{% generation %}...{% endgeneration %}: rendered as its body."""
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.Scope(body).set_lineno(lineno)

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationBlock, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def build_corpus(templates):
    env = make_environment()
    names = list(MESSAGE_LISTS)
    cases = []
    out_templates = []
    for t in templates:
        entry = dict(t)
        try:
            compiled = env.from_string(t["source"])
        except Exception as e:  # noqa: BLE001 - any compile error is the expectation
            entry["compile_error"] = f"{type(e).__name__}: {e}"
            out_templates.append(entry)
            continue
        out_templates.append(entry)
        ti = len(out_templates) - 1
        for mi, name in enumerate(names):
            for agp in (True, False):
                case = {"template": ti, "messages": mi, "add_generation_prompt": agp}
                try:
                    case["expected"] = compiled.render(
                        messages=MESSAGE_LISTS[name], tools=None, documents=None,
                        add_generation_prompt=agp, bos_token=t["bos"], eos_token=t["eos"])
                except Exception as e:  # noqa: BLE001
                    case["error"] = f"{type(e).__name__}: {e}"
                cases.append(case)
    return {"templates": out_templates,
            "message_lists": [{"name": n, "messages": MESSAGE_LISTS[n]} for n in names],
            "cases": cases}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine-tests", required=True)
    parser.add_argument("--shared-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--extra-gguf", action="append", default=[])
    parser.add_argument("--template-dir", action="append", default=[],
                        help="a folder of real models' .jinja templates to add (read, not copied)")
    args = parser.parse_args()
    try:
        import jinja2  # noqa: F401
    except ImportError:
        print("jinja2 is not installed (run tools/setup.sh): skipped")
        return skip_code()
    extra = args.extra_gguf + [os.environ.get("RELAYOUT_SMOLLM2_GGUF", "")]
    template_dirs = list(args.template_dir)
    real = os.environ.get("RELAYOUT_CHAT_TEMPLATE_DIR", "")
    if real:
        if not glob.glob(os.path.join(real, "*.jinja")):
            print(f"$RELAYOUT_CHAT_TEMPLATE_DIR={real} holds no *.jinja "
                  "(tools/fetch_chat_templates.sh fetches them)")
            return 1
        template_dirs.append(real)
    elif os.environ.get("RELAYOUT_REQUIRE_TEST_DATA") == "1":
        print("$RELAYOUT_CHAT_TEMPLATE_DIR is not set (tools/test.sh sets it from "
              "tools/fetch_chat_templates.sh)")
        return 1
    templates = collect_templates(args.shared_dir, extra, template_dirs)
    corpus = build_corpus(templates)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(corpus, f, ensure_ascii=False, indent=1)
    n_rendered = sum(1 for t in corpus["templates"] if "compile_error" not in t)
    print(f"corpus: {len(corpus['templates'])} templates ({n_rendered} compile in jinja2) x "
          f"{len(MESSAGE_LISTS)} message lists x 2 = {len(corpus['cases'])} cases "
          f"({sum(1 for c in corpus['cases'] if 'error' in c)} expected errors)")
    for t in corpus["templates"]:
        print(f"  {t['name']}{' (compile error expected)' if 'compile_error' in t else ''}")
    env = dict(os.environ, RELAYOUT_CHAT_CORPUS=os.path.abspath(args.out))
    result = subprocess.run([args.engine_tests, "--gtest_also_run_disabled_tests",
                             "--gtest_filter=ChatTemplateCorpusTest.DISABLED_*"], env=env)
    return 0 if result.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
