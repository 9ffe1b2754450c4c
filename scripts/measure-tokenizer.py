#!/usr/bin/env python3
"""Measure how close `batchcost estimate` comes to a real tokenizer (README, "How close the input estimate is").

Not part of CI: it needs Anthropic's published Claude 2-era tokenizer, which the
`anthropic` PyPI package shipped until 0.38, and text that happens to be on a Debian box.

    python3 -m venv /tmp/tokvenv
    /tmp/tokvenv/bin/pip install 'anthropic==0.37.1' tokenizers numpy
    cargo build --release
    /tmp/tokvenv/bin/python scripts/measure-tokenizer.py measure \
        --bin target/release/batchcost --pricing pricing.toml --model claude-sonnet-4-6
    /tmp/tokvenv/bin/python scripts/measure-tokenizer.py fit    # refit the coefficients
    python3 scripts/measure-tokenizer.py nfkc-table              # regenerate NFKC_GROWTH

Corpora (all real text already on the machine, chunked to ~2,000 characters):
  english: the English msgids of every Korean gettext catalog in /usr/share/locale/ko
           plus the license texts in /usr/share/common-licenses;
  korean:  the Korean msgstrs of the same catalogs;
  cjk:     the Chinese (zh_CN) and Japanese msgstrs of the catalogs in those locales;
  code:    Rust sources of the crates in ~/.cargo/registry/src and the Python stdlib.

Chunks alternate between the two commands, so `measure` reports on text `fit` never saw.
`measure` writes one request per chunk, runs the real binary on the batch and on a
one-request batch per chunk, and compares its expected and upper-bound input tokens (minus
the fixed per-request framing, measured on an empty text) with the tokenizer's count.
`fit` refits the per-feature weights of `src/estimate/tokens.rs` by non-negative least
squares on the same features, computed by a port of `TextStats`.
"""

import argparse
import gettext
import glob
import json
import os
import subprocess
import sys
import tempfile

CHUNK = 2000
PER_CATEGORY = 300


def tokenizer():
    import anthropic
    import tokenizers

    path = os.path.join(os.path.dirname(anthropic.__file__), "tokenizer.json")
    return tokenizers.Tokenizer.from_file(path)


def chunks(texts):
    out, cur = [], []
    size = 0
    for t in texts:
        cur.append(t)
        size += len(t)
        if size >= CHUNK:
            out.append("\n".join(cur))
            cur, size = [], 0
    return out


def sample(items, part):
    """Every other chunk: `fit` trains on part 0, `measure` reports on part 1."""
    items = items[part::2]
    if len(items) <= PER_CATEGORY:
        return items
    step = len(items) / PER_CATEGORY
    return [items[int(i * step)] for i in range(PER_CATEGORY)]


def has_hangul(s):
    return any("\uac00" <= c <= "\ud7a3" for c in s)


def has_han(s):
    return any("\u4e00" <= c <= "\u9fff" or "\u3040" <= c <= "\u30ff" for c in s)


def catalogs(lang="ko", keep=has_hangul):
    pairs = []
    for mo in sorted(glob.glob(f"/usr/share/locale/{lang}/LC_MESSAGES/*.mo")):
        try:
            with open(mo, "rb") as f:
                cat = gettext.GNUTranslations(f)._catalog
        except Exception:
            continue
        for k, v in cat.items():
            if isinstance(k, tuple):
                k = k[0]
            if k and isinstance(v, str) and keep(v):
                pairs.append((k, v))
    return pairs


def corpora(part):
    pairs = catalogs()
    english = [k for k, _ in pairs]
    for lic in ("Apache-2.0", "GPL-3", "MPL-2.0", "LGPL-3", "GFDL-1.3"):
        path = os.path.join("/usr/share/common-licenses", lic)
        if os.path.exists(path):
            english.extend(open(path, encoding="utf-8").read().split("\n\n"))
    korean = [v for _, v in pairs]
    cjk = [v for _, v in catalogs("zh_CN", has_han)] + [v for _, v in catalogs("ja", has_han)]
    code = []
    rs = sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/*/src/**/*.rs"), recursive=True))
    py = sorted(glob.glob(os.path.join(os.path.dirname(os.__file__), "*.py")))
    for path in rs[::7] + py[::3]:
        try:
            code.append(open(path, encoding="utf-8").read()[:20000])
        except (UnicodeDecodeError, OSError):
            pass
    return {
        "english": sample(chunks(english), part),
        "korean": sample(chunks(korean), part),
        "code": sample([c for src in code for c in split_long(src)], part),
        "cjk": sample(chunks(cjk), part),
    }


def split_long(text):
    return [text[i : i + CHUNK] for i in range(0, len(text), CHUNK)]


# A port of `TextStats` in src/estimate/tokens.rs, used only by `fit`.
FEATURES = ["words", "letters", "digits", "punct", "spaces", "indent", "newlines",
            "hangul", "cjk", "other_chars", "other_bytes"]


def features(text):
    f = dict.fromkeys(FEATURES, 0)
    prev_letter = prev_space = False
    for c in text:
        o = ord(c)
        letter = ("a" <= c <= "z") or ("A" <= c <= "Z")
        if letter:
            f["letters"] += 1
            if not prev_letter:
                f["words"] += 1
        elif "0" <= c <= "9":
            f["digits"] += 1
        elif c == " ":
            if prev_space:
                f["indent"] += 1
            else:
                f["spaces"] += 1
        elif c in "\n\r\t":
            f["newlines"] += 1
        elif o < 0x80:
            f["punct"] += 1
        elif 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
            f["hangul"] += 1
        elif 0x3040 <= o <= 0x30FF or 0x3400 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF:
            f["cjk"] += 1
        else:
            f["other_chars"] += 1
            f["other_bytes"] += len(c.encode())
        prev_letter = letter
        prev_space = c in " \n\t"
    return [f[k] for k in FEATURES]


def nnls(a, b, iters=20000):
    import numpy as np

    x = np.zeros(a.shape[1])
    lr = 1.0 / (np.linalg.norm(a, 2) ** 2)
    for _ in range(iters):
        x = np.maximum(0.0, x - lr * (a.T @ (a @ x - b)))
    return x


def fit(_args):
    import numpy as np

    tok = tokenizer()
    rows, ys, cats = [], [], []
    for cat, texts in corpora(0).items():
        for t in texts:
            rows.append(features(t))
            ys.append(len(tok.encode(t).ids))
            cats.append(cat)
    a = np.array(rows, dtype=float)
    y = np.array(ys, dtype=float)
    # Weight each row by 1/tokens so every chunk counts as a relative error.
    w = 1.0 / y
    x = nnls(a * w[:, None], y * w)
    for name, coef in zip(FEATURES, x):
        print(f"{name:12} {coef * 1000:8.0f} milli-tokens")
    pred = a @ x
    for cat in ("english", "korean", "code", "cjk"):
        idx = [i for i, c in enumerate(cats) if c == cat]
        r = sorted(pred[idx] / y[idx])
        print(f"{cat:8} n={len(idx)} estimate/real = {pred[idx].sum() / y[idx].sum():.3f}"
              f"  per chunk p5 {r[len(r) // 20]:.2f} median {r[len(r) // 2]:.2f} p95 {r[-len(r) // 20]:.2f}")


def run_estimate(binary, pricing, model, texts):
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for i, t in enumerate(texts):
            params = {"model": model, "max_tokens": 1,
                      "messages": [{"role": "user", "content": t}]}
            f.write(json.dumps({"custom_id": f"r{i}", "params": params}) + "\n")
        path = f.name
    try:
        out = subprocess.run([binary, "estimate", path, "--pricing", pricing, "--format", "json"],
                             check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(path)
    m = json.loads(out)["models"][0]
    return m["input_tokens_upper"], m["input_tokens_expected"]


def measure(args):
    tok = tokenizer()
    up0, ex0 = run_estimate(args.bin, args.pricing, args.model, [""])
    print(f"framing of a one-message request: upper {up0}, expected {ex0} tokens (subtracted)")
    print(f"{'text':8} {'chunks':>6} {'real':>9} {'expected':>9} {'exp/real':>8} "
          f"{'p5..p95 per chunk':>17} {'upper':>9} {'up/real':>8} {'min up/real':>11}")
    for cat, texts in corpora(1).items():
        real = [len(tok.encode(t).ids) for t in texts]
        up, ex = run_estimate(args.bin, args.pricing, args.model, texts)
        n = len(texts)
        up -= n * up0
        ex -= n * ex0
        ups, exs = [], []
        for t, r in zip(texts[:: args.every], real[:: args.every]):
            u, e = run_estimate(args.bin, args.pricing, args.model, [t])
            ups.append((u - up0) / r)
            exs.append((e - ex0) / r)
        exs.sort()
        spread = f"{exs[len(exs) // 20]:.2f}..{exs[-1 - len(exs) // 20]:.2f}"
        print(f"{cat:8} {n:6} {sum(real):9} {ex:9} {ex / sum(real):8.3f} {spread:>17} "
              f"{up:9} {up / sum(real):8.3f} {min(ups):11.3f}")


def nfkc_table(_args):
    """Prints `NFKC_GROWTH` for src/estimate/tokens.rs: code point ranges whose NFKC form
    has more UTF-8 bytes than the character itself, with the largest such length. Ranges
    closer than 64 code points are merged (a coarser, still safe, bound)."""
    import unicodedata

    ranges = []
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        n = len(unicodedata.normalize("NFKC", c).encode())
        if n <= len(c.encode()):
            continue
        if ranges and cp - ranges[-1][1] <= 64:
            ranges[-1][1] = cp
            ranges[-1][2] = max(ranges[-1][2], n)
        else:
            ranges.append([cp, cp, n])
    print(f"// Unicode {unicodedata.unidata_version}")
    for lo, hi, n in ranges:
        print(f"    (0x{lo:X}, 0x{hi:X}, {n}),")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--bin", default="target/release/batchcost")
    m.add_argument("--pricing", default="pricing.toml")
    m.add_argument("--model", default="claude-sonnet-4-6")
    m.add_argument("--every", type=int, default=5, help="check the bound per chunk on every Nth chunk")
    m.set_defaults(func=measure)
    f = sub.add_parser("fit")
    f.set_defaults(func=fit)
    sub.add_parser("nfkc-table").set_defaults(func=nfkc_table)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
