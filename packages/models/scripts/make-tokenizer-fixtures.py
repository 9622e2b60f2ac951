#!/usr/bin/python3
"""Make the tokenizer fixtures of @peft/models (packages/models/src/tokenizer/fixtures/).

Writes four small Hugging Face style tokenizer folders and golden outputs from the
reference implementations:

  sp-unigram/   spiece.model (SentencePiece unigram, byte fallback, no dummy prefix,
                whitespace kept, like rinna/japanese-gpt-neox-3.6b) + configs
  sp-bpe/       tokenizer.model (SentencePiece BPE, byte fallback, identity
                normalizer, like Llama's) + configs
  neox-bpe/     tokenizer.json (byte-level BPE in the GPT-NeoX / open-calm format)
  llama-bpe/    tokenizer.json converted from sp-bpe/tokenizer.model the way
                transformers' LlamaConverter does, plus a copy of tokenizer.model
  sp-extra/     two more SentencePiece models used only by tests: sentencepiece's
                defaults (remove_extra_whitespaces, dummy prefix, no byte fallback)
                with user-defined and control symbols, unigram and bpe

  sp-goldens.json        ids / pieces / decoded text from the real sentencepiece
  tokenizer-json-goldens.json  ids / decoded text from Hugging Face tokenizers (Rust)
  special-token-goldens.json   ids / decoded text (with and without skip_special_tokens)
                from transformers for strings with special-token text (</s>, <s>, <unk>,
                <pad>, added tokens), per fixture folder and config variant (legacy,
                add_eos_token, clean_up_tokenization_spaces, added_tokens_decoder, ...).
                Reference: transformers 4.x (slow T5Tokenizer / LlamaTokenizer for a
                SentencePiece model, the fast tokenizer for tokenizer.json); where
                transformers 5.x differs, its answers are recorded beside it.

Requirements:
  - Debian's python3-sentencepiece (`apt-get install -y python3-sentencepiece`), run
    with /usr/bin/python3 (a pyenv python3 on PATH does not see Debian packages).
  - For tokenizer-json-goldens.json only: the npm package `tokenizers` (the Rust
    library's Node binding), installed anywhere, e.g.
        mkdir -p /tmp/tokref && cd /tmp/tokref && npm i tokenizers@0.23.2
    and passed as --hf-tokenizers /tmp/tokref/node_modules/tokenizers. Without it
    the existing tokenizer-json-goldens.json is left as it is.
  - For special-token-goldens.json only: Python environments with transformers,
    sentencepiece, tokenizers and protobuf, passed as --transformers4 (4.57.6, the
    reference) and --transformers5 (5.18.0, differences), e.g.
        python3 -m venv /tmp/tok4 && /tmp/tok4/bin/pip install transformers==4.57.6 \
            sentencepiece protobuf
        python3 -m venv /tmp/tok5 && /tmp/tok5/bin/pip install transformers==5.18.0 \
            sentencepiece tokenizers protobuf
    transformers 4.57 pins huggingface-hub < 1.0; with only a 1.x hub installed
    (`pip install --no-deps transformers==4.57.6 tokenizers==0.22.2 huggingface-hub` and
    its other requirements), the goldens run skips transformers' import-time version
    check. Without --transformers4 the existing special-token-goldens.json is left as it
    is. --special-token-goldens-only rewrites just that file from the fixtures as they
    are (no training, no sentencepiece needed in the running python).

Usage:
  /usr/bin/python3 packages/models/scripts/make-tokenizer-fixtures.py \
      [--hf-tokenizers /tmp/tokref/node_modules/tokenizers] \
      [--transformers4 /tmp/tok4/bin/python --transformers5 /tmp/tok5/bin/python]
  python3 packages/models/scripts/make-tokenizer-fixtures.py --special-token-goldens-only \
      --transformers4 /tmp/tok4/bin/python --transformers5 /tmp/tok5/bin/python

Everything is deterministic: the corpus is written out below, training runs on one
thread without shuffling, and the GPT-NeoX merges are learned by a plain counting loop.
"""

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

try:
    import sentencepiece as spm
except ImportError:  # --special-token-goldens-only runs without it in this interpreter
    spm = None

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, '..', 'src', 'tokenizer', 'fixtures'))

# ---------------------------------------------------------------------------
# Corpus: Japanese, English and symbols.
# ---------------------------------------------------------------------------

JA = [
    '今日は良い天気ですね。',
    '明日は雨が降るかもしれません。',
    '私は東京に住んでいます。',
    '大規模言語モデルを微調整します。',
    'このモデルは日本語の文章を生成できます。',
    '学習率は小さめに設定してください。',
    '寿司と天ぷらが好きです。',
    '猫が窓の外を見ている。',
    '新しいデータセットを作成しました。',
    '東京から大阪まで新幹線で行きます。',
    'プログラムを実行すると、結果が表示されます。',
    'トークナイザーは文章を単語に分割します。',
    'カタカナとひらがなと漢字を使います。',
    '日本語の文章には空白がありません。',
    '質問に答えてください。',
    '病気の原因を調べる研究です。',
    '薬の副作用について説明します。',
    'これはテストです。',
    'ありがとうございます。',
    'すみません、駅はどこですか？',
    'コンピューターで計算する。',
    '京都の寺を訪れました。',
    '春になると桜が咲きます。',
    '夏は暑くて、冬は寒い。',
    '富士山は日本で一番高い山です。',
]

EN = [
    'The quick brown fox jumps over the lazy dog.',
    'Low-rank adaptation fine-tunes large language models cheaply.',
    'We train the adapter for three epochs with a small learning rate.',
    'The tokenizer splits text into pieces and maps them to ids.',
    'Hello, world! How are you today?',
    'This is a test of the tokenizer.',
    'Machine learning models need a lot of data.',
    'The weather is nice today, isn\'t it?',
    'She said: "it works on my machine".',
    'Numbers like 3.14, 42 and 2024 appear in text.',
    'Please answer the question in one sentence.',
    'The drug caused a rare side effect in the patient.',
    'Chemicals and diseases are tagged in the abstract.',
    'Tokyo and Osaka are large cities in Japan.',
    'Attention is all you need.',
]

SYMBOLS = [
    'x = (a + b) * c / 2;',
    'if (x > 0 && y < 10) { return x - y; }',
    'email: user@example.com, url: https://example.com/path?q=1&r=2',
    '#include <stdio.h>',
    '[1, 2, 3] -> {"key": "value"}',
    '100% of $5 is $5; 50% is $2.50',
    '~/path/to/file.txt | grep "foo" > out.log',
    'a_b-c.d:e;f!g?h',
]

MIXED = [
    'LoRAで大規模言語モデルを微調整する。',
    'GPT-NeoXは日本語のモデルです。',
    'open-calmとrinnaのモデルを比較します。',
    'Pythonでプログラムを書きます。',
    '学習率は1e-4です。',
    'バッチサイズは8、エポック数は3。',
]


def corpus_lines():
    lines = []
    for group in (JA, EN, SYMBOLS, MIXED):
        lines.extend(group)
    # Deterministic combinations so that frequent pieces get merged.
    for i, ja in enumerate(JA):
        en = EN[i % len(EN)]
        lines.append(ja + ' ' + en)
        lines.append(en.lower())
        lines.append(ja.replace('。', '、') + MIXED[i % len(MIXED)])
        lines.append(SYMBOLS[i % len(SYMBOLS)] + ' ' + ja)
    for i in range(60):
        lines.append(' '.join(EN[(i * 7 + j) % len(EN)].split()[j % 3] for j in range(8)))
    return lines


# ---------------------------------------------------------------------------
# Test strings for goldens.
# ---------------------------------------------------------------------------

def test_strings():
    s = [
        '',
        ' ',
        '   ',
        'a',
        'hello',
        ' hello',
        'hello ',
        '  hello  world  ',
        'hello world',
        'hello\tworld',
        'line one\nline two',
        '\n',
        'The quick brown fox jumps over the lazy dog.',
        'Low-rank adaptation fine-tunes large language models cheaply.',
        'UNSEEN words: zebra quixotic xylophone',
        'Numbers 0123456789 and 3.14159',
        '1e-4',
        'x = (a + b) * c / 2;',
        '#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~',
        'email: user@example.com',
        'https://example.com/path?q=1&r=2',
        '今日は良い天気ですね。',
        '大規模言語モデルを微調整します。',
        '私は東京に住んでいます',
        '日本語　の　全角スペース',
        '　先頭の全角スペース',
        'ＡＢＣ　ＸＹＺ　１２３',
        'ｶﾀｶﾅ ﾃｽﾄ ｶﾞｷﾞ',
        '①②③ ㍻ ㌔',
        'ﬁnance ﬂow',
        'LoRAで大規模言語モデルを微調整する。',
        'GPT-NeoXは日本語のモデルです。',
        'open-calmとrinna',
        '学習率は1e-4です。',
        'バッチサイズは8、エポック数は3。',
        '鬱蒼とした森',
        '龘',
        '😀',
        '🍣🍺 寿司とビール',
        '👨‍👩‍👧 family',
        'e\u0301 é',
        '한국어 텍스트',
        'مرحبا بالعالم',
        'Привет, мир',
        'Ελληνικά',
        'naïve café résumé',
        '<s> not special in sentencepiece </s>',
        '<unk>',
        '[PAD][CLS]',
        '▁ already escaped ▁▁',
        'a\u0000b',
        'tab\t\tand\r\nnewline',
        'zero\u200bwidth',
        '\u3000',
        '  ',
        '。、！？「」『』（）',
        '...',
        '!!!???',
        'aaaaaaaaaaaaaaaaaaaaaaaa',
        'ああああああああ',
        'wow  two  spaces',
        ' leading space',
        'trailing space ',
        '  leading two',
        'trailing two  ',
        'The weather is nice today, isn\'t it?',
        'She said: "it works on my machine".',
        '富士山は日本で一番高い山です。 Mt. Fuji is the highest.',
        'Tokyo 東京 Osaka 大阪',
        '寿司🍣と天ぷら',
        '\u00a0non-breaking space',
        'fullwidth！？',
        '～〜',
        'Ω ≈ ç √ ∫',
        '♪♫♬',
        '🀄️🃏',
        'a' * 3 + ' ' + 'b' * 3,
        'end.',
    ]
    # Mix corpus lines and slices of them for variety.
    rnd = random.Random(1234)
    lines = corpus_lines()
    while len(s) < 110:
        line = lines[rnd.randrange(len(lines))]
        a = rnd.randrange(len(line))
        b = min(len(line), a + rnd.randrange(1, 40))
        s.append(line[a:b])
    return s


# ---------------------------------------------------------------------------
# SentencePiece models.
# ---------------------------------------------------------------------------

# A tiny normalization rule set in the TSV form sentencepiece compiles into a
# precompiled charsmap (the same darts-clone trie format as nmt_nfkc's, but a few
# hundred bytes instead of ~240 KB). Columns: source code points, target code points.
NORM_RULES = [
    ('3000', '20'),  # ideographic space -> space
    ('A0', '20'),  # no-break space -> space
    ('FF76 FF9E', '30AC'),  # ｶﾞ -> ガ (longest match over ｶ)
    ('FF77 FF9E', '30AE'),  # ｷﾞ -> ギ
    ('FF76', '30AB'),  # ｶ -> カ
    ('FF77', '30AD'),  # ｷ -> キ
    ('FF80', '30BF'),
    ('FF85', '30CA'),
    ('FF83', '30C6'),
    ('FF7D', '30B9'),
    ('FF84', '30C8'),
    ('2460', '31'),  # ① -> 1
    ('2461', '32'),
    ('2462', '33'),
    ('337B', '5E73 6210'),  # ㍻ -> 平成 (one to many)
    ('FB01', '66 69'),  # ﬁ -> fi
    ('200B', ''),  # zero width space -> removed
]
# Full-width ASCII -> ASCII.
NORM_RULES += [('%X' % cp, '%X' % (cp - 0xFEE0)) for cp in range(0xFF01, 0xFF5F)]


def write_norm_tsv(path):
    with open(path, 'w', encoding='utf-8') as f:
        for src, dst in NORM_RULES:
            f.write('%s\t%s\n' % (src, dst))


SP_MODELS = {
    # name: (relative path, trainer kwargs)
    'sp-unigram': (
        'sp-unigram/spiece.model',
        dict(
            model_type='unigram',
            vocab_size=600,
            byte_fallback=True,
            add_dummy_prefix=False,
            remove_extra_whitespaces=False,
            normalization_rule_tsv='@NORM@',
            pad_id=0,
            unk_id=1,
            bos_id=2,
            eos_id=3,
            pad_piece='[PAD]',
            control_symbols=['[CLS]', '[SEP]', '[MASK]'],
            character_coverage=0.98,
        ),
    ),
    'sp-bpe': (
        'sp-bpe/tokenizer.model',
        dict(
            model_type='bpe',
            vocab_size=520,
            byte_fallback=True,
            add_dummy_prefix=True,
            remove_extra_whitespaces=False,
            normalization_rule_name='identity',
            split_digits=True,
            allow_whitespace_only_pieces=True,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            character_coverage=0.98,
        ),
    ),
    'sp-extra-unigram': (
        'sp-extra/unigram-defaults.model',
        dict(
            model_type='unigram',
            vocab_size=300,
            normalization_rule_tsv='@NORM@',
            user_defined_symbols=['<sep>', '🍣', 'LoRA'],
            control_symbols=['<mask>'],
            character_coverage=0.98,
        ),
    ),
    'sp-extra-bpe': (
        'sp-extra/bpe-defaults.model',
        dict(
            model_type='bpe',
            vocab_size=300,
            normalization_rule_name='identity',
            user_defined_symbols=['<sep>', '🍣'],
            character_coverage=0.98,
        ),
    ),
}


def train_sp(lines, norm_path, out_path, kwargs):
    """Trains from an iterator into memory, so no temporary path ends up in the model's
    trainer_spec (input / model_prefix) and the bytes are the same on every run. The
    normalization TSV's path is stored, so it is always the same relative name."""
    args = dict(kwargs)
    if args.get('normalization_rule_tsv') == '@NORM@':
        args['normalization_rule_tsv'] = norm_path
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        num_threads=1,
        input_sentence_size=0,
        shuffle_input_sentence=False,
        hard_vocab_limit=False,
        minloglevel=2,
        **args,
    )
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, 'wb') as f:
        f.write(model.getvalue())


def sp_goldens(model_path, strings):
    """encode[i] = ids of strings[i]; decoded[i] = sp.decode(encode[i]), or null where
    that equals strings[i] (keeps the file small)."""
    sp = spm.SentencePieceProcessor(model_file=model_path)
    encode, decoded = [], []
    for text in strings:
        ids = sp.encode(text, out_type=int)
        encode.append(ids)
        d = sp.decode(ids)
        decoded.append(None if d == text else d)
    # Decode of id sequences no encode produces: random ids (control, unknown, byte
    # pieces in odd orders giving invalid UTF-8, leading ▁ pieces).
    rnd = random.Random(99)
    n = sp.get_piece_size()
    decode_cases = []
    for k in range(40):
        length = rnd.randrange(0, 8)
        ids = [rnd.randrange(n) for _ in range(length)]
        decode_cases.append({'ids': ids, 'decoded': sp.decode(ids)})
    byte_ids = [i for i in range(n) if sp.is_byte(i)]
    if byte_ids:
        by = {sp.id_to_piece(i): i for i in byte_ids}
        seqs = [
            ['<0xE3>', '<0x81>'],  # truncated 3-byte sequence
            ['<0xE3>', '<0x81>', '<0x82>'],  # あ
            ['<0xFF>', '<0x41>'],  # invalid lead byte
            ['<0x80>'],
            ['<0xF0>', '<0x9F>', '<0x98>', '<0x80>', '<0xE3>'],
        ]
        for seq in seqs:
            ids = [by[p] for p in seq]
            decode_cases.append({'ids': ids, 'decoded': sp.decode(ids)})
    return {
        'pieceSize': n,
        'unkId': sp.unk_id(),
        'bosId': sp.bos_id(),
        'eosId': sp.eos_id(),
        'padId': sp.pad_id(),
        'encode': encode,
        'decoded': decoded,
        'decodeCases': decode_cases,
    }


# ---------------------------------------------------------------------------
# Byte-level BPE tokenizer.json in the GPT-NeoX format.
# ---------------------------------------------------------------------------

def bytes_to_unicode():
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def learn_byte_bpe(lines, num_merges):
    """Plain BPE over whitespace-split words with a leading space marker, byte-level
    alphabet. Ties broken by the pair's string so the result is deterministic."""
    b2u = bytes_to_unicode()
    counts = {}
    for line in lines:
        for i, word in enumerate(line.split(' ')):
            if not word:
                continue
            w = (' ' if i > 0 else '') + word
            key = tuple(b2u[b] for b in w.encode('utf-8'))
            counts[key] = counts.get(key, 0) + 1
    words = dict(counts)
    merges = []
    for _ in range(num_merges):
        pairs = {}
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], -len(kv[0][0] + kv[0][1]), kv[0]))[0]
        if pairs[best] < 2:
            break
        merges.append(best)
        new_words = {}
        for w, c in words.items():
            out = []
            i = 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + c
        words = new_words
    return merges


def neox_tokenizer_json(lines):
    b2u = bytes_to_unicode()
    vocab = {'<|endoftext|>': 0, '<|padding|>': 1}
    for b in range(256):
        vocab[b2u[b]] = len(vocab)
    merges = learn_byte_bpe(lines, 300)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    double_space_id = len(vocab)
    byte_level = {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True}
    return {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': [
            {'id': 0, 'content': '<|endoftext|>', 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True},
            {'id': 1, 'content': '<|padding|>', 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True},
            # GPT-NeoX ships runs of spaces as normalized, non-special added tokens.
            {'id': double_space_id, 'content': '    ', 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': True, 'special': False},
        ],
        'normalizer': {'type': 'NFC'},
        'pre_tokenizer': byte_level,
        'post_processor': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': False, 'use_regex': True},
        'decoder': {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': True},
        'model': {
            'type': 'BPE',
            'dropout': None,
            'unk_token': None,
            'continuing_subword_prefix': None,
            'end_of_word_suffix': None,
            'fuse_unk': False,
            'byte_fallback': False,
            'vocab': vocab,
            'merges': ['%s %s' % m for m in merges],  # the older "a b" string form
        },
    }


# ---------------------------------------------------------------------------
# Llama-style tokenizer.json converted from a SentencePiece BPE model.
# ---------------------------------------------------------------------------

def llama_tokenizer_json(model_path):
    """What transformers' LlamaConverter writes (the Llama 2 era form: Prepend and
    Replace normalizers, no pre-tokenizer, TemplateProcessing adding <s>)."""
    sp = spm.SentencePieceProcessor(model_file=model_path)
    n = sp.get_piece_size()
    vocab = {sp.id_to_piece(i): i for i in range(n)}
    scores = {sp.id_to_piece(i): sp.get_score(i) for i in range(n)}
    # SentencePieceExtractor.extract(vocab_scores): every split of a piece into two
    # pieces of the vocabulary is a merge, ordered by the merged piece's score.
    merges = []
    for piece, score in scores.items():
        local = []
        for k in range(1, len(piece)):
            left, right = piece[:k], piece[k:]
            if left in vocab and right in vocab:
                local.append((left, right, score))
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda m: m[2], reverse=True)
    added = []
    for i in range(n):
        if sp.is_control(i) or sp.is_unknown(i):
            added.append({'id': i, 'content': sp.id_to_piece(i), 'single_word': False, 'lstrip': False, 'rstrip': False, 'normalized': False, 'special': True})
    bos = sp.id_to_piece(sp.bos_id())
    return {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': added,
        'normalizer': {
            'type': 'Sequence',
            'normalizers': [
                {'type': 'Prepend', 'prepend': '▁'},
                {'type': 'Replace', 'pattern': {'String': ' '}, 'content': '▁'},
            ],
        },
        'pre_tokenizer': None,
        'post_processor': {
            'type': 'TemplateProcessing',
            'single': [{'SpecialToken': {'id': bos, 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}}],
            'pair': [
                {'SpecialToken': {'id': bos, 'type_id': 0}},
                {'Sequence': {'id': 'A', 'type_id': 0}},
                {'SpecialToken': {'id': bos, 'type_id': 1}},
                {'Sequence': {'id': 'B', 'type_id': 1}},
            ],
            'special_tokens': {bos: {'id': bos, 'ids': [sp.bos_id()], 'tokens': [bos]}},
        },
        'decoder': {
            'type': 'Sequence',
            'decoders': [
                {'type': 'Replace', 'pattern': {'String': '▁'}, 'content': ' '},
                {'type': 'ByteFallback'},
                {'type': 'Fuse'},
                {'type': 'Strip', 'content': ' ', 'start': 1, 'stop': 0},
            ],
        },
        'model': {
            'type': 'BPE',
            'dropout': None,
            'unk_token': sp.id_to_piece(sp.unk_id()),
            'continuing_subword_prefix': None,
            'end_of_word_suffix': None,
            'fuse_unk': True,
            'byte_fallback': True,
            'ignore_merges': False,
            'vocab': vocab,
            'merges': [[a, b] for a, b, _ in merges],  # the newer [a, b] array form
        },
    }


def metaspace_variant(tok):
    """The newer Llama form (transformers >= 4.38 converters): no normalizer, a
    Metaspace pre-tokenizer with prepend_scheme "first" and split false, Metaspace
    decoder. tokenizer.test.ts applies the same change in memory."""
    out = json.loads(json.dumps(tok))
    out['normalizer'] = None
    out['pre_tokenizer'] = {'type': 'Metaspace', 'replacement': '▁', 'prepend_scheme': 'first', 'split': False}
    out['decoder'] = {'type': 'Metaspace', 'replacement': '▁', 'prepend_scheme': 'first', 'split': False}
    return out


# ---------------------------------------------------------------------------
# Hugging Face config files.
# ---------------------------------------------------------------------------

def added_token(content):
    return {'content': content, 'lstrip': False, 'normalized': False, 'rstrip': False, 'single_word': False}


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write('\n')


def write_compact_json(path, obj, depth=2):
    """JSON with the first `depth` levels indented and everything below on one line:
    goldens stay small and still diff line by line."""
    def dump(value, level):
        pad = '  ' * level
        if level < depth and isinstance(value, dict) and value:
            items = ['%s  %s: %s' % (pad, json.dumps(k, ensure_ascii=False), dump(v, level + 1)) for k, v in value.items()]
            return '{\n' + ',\n'.join(items) + '\n' + pad + '}'
        if level < depth and isinstance(value, list) and value:
            items = ['%s  %s' % (pad, dump(v, level + 1)) for v in value]
            return '[\n' + ',\n'.join(items) + '\n' + pad + ']'
        return json.dumps(value, ensure_ascii=False, separators=(',', ':'))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(dump(obj, 0) + '\n')


def write_configs():
    # rinna/japanese-gpt-neox-3.6b style: T5Tokenizer (slow), appends </s>, has [PAD].
    write_json(os.path.join(FIXTURES, 'sp-unigram', 'tokenizer_config.json'), {
        'tokenizer_class': 'T5Tokenizer',
        'bos_token': '<s>',
        'eos_token': '</s>',
        'unk_token': '<unk>',
        'pad_token': '[PAD]',
        'cls_token': '[CLS]',
        'sep_token': '[SEP]',
        'mask_token': '[MASK]',
        'extra_ids': 0,
        'additional_special_tokens': [],
        'do_lower_case': False,
        'model_max_length': 2048,
    })
    write_json(os.path.join(FIXTURES, 'sp-unigram', 'special_tokens_map.json'), {
        'bos_token': '<s>', 'eos_token': '</s>', 'unk_token': '<unk>', 'pad_token': '[PAD]',
        'cls_token': '[CLS]', 'sep_token': '[SEP]', 'mask_token': '[MASK]',
    })
    # Llama (slow) style: add_bos_token true, no pad token, AddedToken objects.
    llama_config = {
        'tokenizer_class': 'LlamaTokenizer',
        'add_bos_token': True,
        'add_eos_token': False,
        'bos_token': dict(added_token('<s>'), __type='AddedToken'),
        'eos_token': dict(added_token('</s>'), __type='AddedToken'),
        'unk_token': dict(added_token('<unk>'), __type='AddedToken'),
        'pad_token': None,
        'clean_up_tokenization_spaces': False,
        'legacy': True,
        'model_max_length': 4096,
        'padding_side': 'right',
    }
    llama_map = {'bos_token': added_token('<s>'), 'eos_token': added_token('</s>'), 'unk_token': added_token('<unk>')}
    write_json(os.path.join(FIXTURES, 'sp-bpe', 'tokenizer_config.json'), llama_config)
    write_json(os.path.join(FIXTURES, 'sp-bpe', 'special_tokens_map.json'), llama_map)
    llama_fast = dict(llama_config, tokenizer_class='LlamaTokenizerFast')
    write_json(os.path.join(FIXTURES, 'llama-bpe', 'tokenizer_config.json'), llama_fast)
    write_json(os.path.join(FIXTURES, 'llama-bpe', 'special_tokens_map.json'), llama_map)
    # GPT-NeoX / open-calm style: <|endoftext|> is bos, eos and unk; no pad token.
    write_json(os.path.join(FIXTURES, 'neox-bpe', 'tokenizer_config.json'), {
        'tokenizer_class': 'GPTNeoXTokenizer',
        'add_prefix_space': False,
        'bos_token': '<|endoftext|>',
        'eos_token': '<|endoftext|>',
        'unk_token': '<|endoftext|>',
        'clean_up_tokenization_spaces': False,
        'model_max_length': 2048,
    })
    write_json(os.path.join(FIXTURES, 'neox-bpe', 'special_tokens_map.json'), {
        'bos_token': '<|endoftext|>', 'eos_token': '<|endoftext|>', 'unk_token': '<|endoftext|>',
    })


# ---------------------------------------------------------------------------
# Goldens from Hugging Face tokenizers (Rust) through its Node binding.
# ---------------------------------------------------------------------------

NODE_GOLDENS = r"""
const { Tokenizer } = require(process.argv[1]);
const { strings, specs: input } = JSON.parse(require('fs').readFileSync(0, 'utf8'));
(async () => {
  const out = {};
  for (const [name, spec] of Object.entries(input)) {
    const tok = Tokenizer.fromString(spec.json);
    const encode = [];
    const encodeWithSpecialTokens = [];
    const decoded = [];
    for (const text of strings) {
      const withSpecial = await tok.encode(text, null, { addSpecialTokens: true });
      const plain = await tok.encode(text, null, { addSpecialTokens: false });
      const ids = plain.getIds();
      encode.push(ids);
      encodeWithSpecialTokens.push(withSpecial.getIds());
      const d = await tok.decode(ids, false);
      decoded.push(d === text ? null : d);
    }
    out[name] = { vocabSize: tok.getVocabSize(true), encode, encodeWithSpecialTokens, decoded };
  }
  process.stdout.write(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def tokenizer_json_goldens(module_path, strings, specs):
    proc = subprocess.run(
        ['node', '-e', NODE_GOLDENS, module_path],
        input=json.dumps({'strings': strings, 'specs': specs}).encode('utf-8'),
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit('node tokenizers goldens failed:\n' + proc.stderr.decode('utf-8', 'replace'))
    return json.loads(proc.stdout.decode('utf-8'))


# ---------------------------------------------------------------------------
# Special-token goldens from transformers (special-token-goldens.json).
# ---------------------------------------------------------------------------
#
# What transformers' tokenizers return for strings that contain special-token text
# (</s>, <s>, <unk>, <pad>, added tokens; at the ends, in the middle, next to each other
# and to spaces, repeated), with and without the special tokens added, and what decode
# gives for those ids with and without skip_special_tokens.
#
# The reference, as @peft reads a folder:
#   - a SentencePiece model (spiece.model / tokenizer.model): transformers 4.x's slow
#     tokenizer classes (T5Tokenizer, LlamaTokenizer), the semantics rinna's
#     japanese-gpt-neox models were published with (`use_fast=False`). transformers 5
#     has no slow tokenizers: it converts the model into a tokenizers pipeline, which
#     differs (recorded under "differences").
#   - tokenizer.json: transformers 4.x's fast tokenizer, i.e. the Rust library running
#     the file as written plus transformers' bos/eos post-processor and decode
#     clean-up. transformers 5's LlamaTokenizer rebuilds the pipeline instead of running
#     tokenizer.json's normalizer (recorded under "differences").

SPECIAL_STRINGS = [
    '',
    ' ',
    'hello',
    'hello world',
    '</s>',
    '<s>',
    '<unk>',
    '<pad>',
    '[PAD]',
    '[CLS]',
    '[SEP]',
    '[MASK]',
    '<|endoftext|>',
    '<|padding|>',
    'hello</s>',
    'hello </s>',
    'hello</s> ',
    'hello </s> ',
    'hello</s>\n',
    '</s>hello',
    '</s> hello',
    ' </s>hello',
    '  </s>  ',
    'hello</s>world',
    'hello </s> world',
    'hello  </s>  world',
    'hello</s></s>',
    '</s></s>',
    '</s></s></s>',
    '</s> </s>',
    '<s>hello',
    '<s> hello',
    ' <s>hello',
    ' <s> hello',
    'hello<s>',
    '<s>hello</s>',
    '<s> hello </s>',
    '<s></s>',
    '</s><s>',
    '<s><s>hello</s></s>',
    '<s>  </s>',
    'a<s>b</s>c',
    '<unk>hello<unk>',
    'a<unk>b',
    '<unk> <unk>',
    '<unk></s>',
    '<pad>hello<pad>',
    'hello<pad></s>',
    '[PAD][PAD]hello',
    '[PAD] hello [PAD]',
    'hello[SEP]world[CLS]',
    '[CLS] hello [SEP] world [SEP]',
    '[MASK] is [MASK].',
    'a [MASK] b',
    'a[MASK]b',
    '日本語</s>',
    '</s>日本語',
    '日本語<s>日本語',
    '今日は</s> 明日は',
    '大規模言語モデルを微調整します。</s>',
    'モデル',
    'このモデルはモデルです',
    ' モデル ',
    'モデル</s>',
    '<|user|>hello',
    '<|user|> hello <|user|>  world',
    'hi<|user|>',
    '<<s>>',
    '</s>>',
    '<</s>',
    '</ s>',
    '</S>',
    '<s',
    's>',
    '<s>s>',
    '</s/s>',
    '<unk',
    '▁</s>',
    '</s>▁',
    '▁<s>▁hello',
    '▁hello</s>',
    '\n</s>\n',
    '\t<s>\t',
    'hello\n</s>',
    'hello, world</s>',
    "don't stop , it 's fine .</s>",
    'a . b , c ! d ? e \'s f n\'t g \'m h \'ve i \'re',
    'Hello , world ! </s>',
    '<|endoftext|>hello<|endoftext|>',
    'hello <|endoftext|> world',
    '<|endoftext|><|endoftext|>',
    '    <|endoftext|>',
    '<|padding|><|padding|>hi',
    'The quick brown fox.</s>',
    '</s>The end.',
    'x</s>y<s>z<unk>w<pad>v',
]

# Ids decoded as they are (not from an encode): padding, specials only, specials first.
# Written as tokens; each tokenizer maps them to its ids, and a token it lacks drops the case.
SPECIAL_DECODE_TOKENS = [
    ['[PAD]', '[PAD]', '▁hello'],
    ['▁hello', '</s>', '[PAD]', '[PAD]'],
    ['</s>'],
    ['<s>'],
    ['<s>', '<s>'],
    ['<s>', '▁hello', '</s>', '</s>'],
    ['</s>', '▁hello'],
    ['▁', '</s>'],
    ['<unk>'],
    ['<unk>', '▁hello'],
    ['<|endoftext|>', 'hello'],
    ['<pad>', '<pad>', '<s>', '▁hello'],
]

# Config and tokenizer.json changes of the variants, beyond the fixture folders as they are.
_AT = dict(lstrip=False, normalized=False, rstrip=False, single_word=False)
ADDED_SP_UNIGRAM = {
    # rinna's configs have no added_tokens_decoder; this is what transformers >= 4.34 saves,
    # with [MASK] eating the spaces on its left as ALBERT-style mask tokens do
    '0': dict(_AT, content='[PAD]', special=True),
    '1': dict(_AT, content='<unk>', special=True),
    '2': dict(_AT, content='<s>', special=True),
    '3': dict(_AT, content='</s>', special=True),
    '4': dict(_AT, content='[CLS]', special=True),
    '5': dict(_AT, content='[SEP]', special=True, rstrip=True),
    '6': dict(_AT, content='[MASK]', special=True, lstrip=True),
}
ADDED_LLAMA = {
    '0': dict(_AT, content='<unk>', special=True),
    '1': dict(_AT, content='<s>', special=True),
    '2': dict(_AT, content='</s>', special=True),
    # a pad token appended to the vocabulary, as Llama fine-tunes do
    '520': dict(_AT, content='<pad>', special=True),
    # a chat marker added as a plain (non-special) token that eats the spaces after it
    '521': dict(_AT, content='<|user|>', special=False, rstrip=True),
    # a token of the SentencePiece vocabulary registered as an added token
    '304': dict(_AT, content='モデル', special=False),
}
# The same with other AddedToken flags: a whole-word-only marker, a token eating spaces on both sides.
ADDED_LLAMA_FLAGS = dict(
    ADDED_LLAMA,
    **{
        '521': dict(_AT, content='<|user|>', special=False, single_word=True),
        '304': dict(_AT, content='モデル', special=False, lstrip=True, rstrip=True),
    },
)
# AddedToken objects in tokenizer_config.json; without added_tokens_decoder transformers lets
# special_tokens_map.json's plain strings replace them, flags and all.
_OBJ = dict(_AT, __type='AddedToken')
CONFIG_OBJECTS = {
    'eos_token': dict(_OBJ, content='</s>', lstrip=True),
    'mask_token': dict(_OBJ, content='[MASK]', lstrip=True, rstrip=True),
}


def _added_json(decoder):
    return [dict(v, id=int(k)) for k, v in sorted(decoder.items(), key=lambda kv: int(kv[0]))]


# name: folder, whether tokenizer.json runs (fast) or the SentencePiece model (slow),
# tokenizer_config.json keys replaced, tokenizer.json changes (metaspace: the newer Llama
# converter form; addedTokens: appended to added_tokens where the id is new).
SPECIAL_VARIANTS = {
    'sp-unigram': dict(folder='sp-unigram', fast=False, config={}),
    'sp-unigram-nonlegacy': dict(folder='sp-unigram', fast=False, config={'legacy': False}),
    'sp-unigram-cleanup': dict(folder='sp-unigram', fast=False, config={'clean_up_tokenization_spaces': True}),
    'sp-unigram-added': dict(folder='sp-unigram', fast=False, config={'added_tokens_decoder': ADDED_SP_UNIGRAM}),
    'sp-unigram-config-objects': dict(folder='sp-unigram', fast=False, config=CONFIG_OBJECTS),
    'sp-unigram-no-prefix-space': dict(folder='sp-unigram', fast=False, config={'legacy': False, 'add_prefix_space': False}),
    'sp-bpe': dict(folder='sp-bpe', fast=False, config={}),
    'sp-bpe-nonlegacy': dict(folder='sp-bpe', fast=False, config={'legacy': False}),
    'sp-bpe-eos': dict(folder='sp-bpe', fast=False, config={'add_eos_token': True, 'clean_up_tokenization_spaces': True}),
    'sp-bpe-added': dict(folder='sp-bpe', fast=False, config={'added_tokens_decoder': ADDED_LLAMA, 'pad_token': '<pad>'}),
    'sp-bpe-added-nonlegacy': dict(
        folder='sp-bpe', fast=False, config={'added_tokens_decoder': ADDED_LLAMA, 'pad_token': '<pad>', 'legacy': False}
    ),
    'sp-bpe-added-flags': dict(
        folder='sp-bpe',
        fast=False,
        config={'added_tokens_decoder': ADDED_LLAMA_FLAGS, 'pad_token': '<pad>', 'legacy': False, 'add_eos_token': True},
    ),
    'sp-bpe-no-prefix-space': dict(folder='sp-bpe', fast=False, config={'legacy': False, 'add_prefix_space': False}),
    'llama-bpe': dict(folder='llama-bpe', fast=True, config={}),
    'llama-bpe-nonlegacy': dict(folder='llama-bpe', fast=True, config={'legacy': False}),
    'llama-bpe-eos': dict(folder='llama-bpe', fast=True, config={'add_eos_token': True, 'clean_up_tokenization_spaces': True}),
    'llama-bpe-metaspace': dict(folder='llama-bpe', fast=True, config={}, json={'metaspace': True}),
    'llama-bpe-added': dict(
        folder='llama-bpe',
        fast=True,
        config={'added_tokens_decoder': ADDED_LLAMA, 'pad_token': '<pad>'},
        json={'addedTokens': _added_json(ADDED_LLAMA)},
    ),
    'neox-bpe': dict(folder='neox-bpe', fast=True, config={}),
    'neox-bpe-cleanup': dict(folder='neox-bpe', fast=True, config={'clean_up_tokenization_spaces': True}),
}

TRANSFORMERS_GOLDENS = r"""
import json, sys, types, warnings
warnings.filterwarnings('ignore')
try:
    import transformers
except ImportError as e:
    # transformers 4.57 pins huggingface-hub < 1.0; with only a 1.x hub at hand, skip its
    # import-time version check (loading a local folder's tokenizer does not use the hub)
    if 'huggingface-hub' not in str(e):
        raise
    for m in [m for m in sys.modules if m.startswith('transformers')]:
        del sys.modules[m]
    sys.modules['transformers.dependency_versions_check'] = types.ModuleType('transformers.dependency_versions_check')
    import transformers
from transformers import AutoTokenizer
from transformers.utils import logging
logging.set_verbosity_error()

job = json.load(sys.stdin)
out = {'version': transformers.__version__, 'variants': {}}
for name, v in job['variants'].items():
    tok = AutoTokenizer.from_pretrained(v['dir'], use_fast=v['fast'])
    r = {'class': type(tok).__name__ + (' (fast)' if tok.is_fast else ' (slow)'), 'encode': [], 'encodePlain': [],
         'decode': [], 'decodeSkip': [], 'decodeCases': []}
    for text in job['strings']:
        ids = tok(text).input_ids
        r['encode'].append(ids)
        r['encodePlain'].append(tok(text, add_special_tokens=False).input_ids)
        r['decode'].append(tok.decode(ids))
        r['decodeSkip'].append(tok.decode(ids, skip_special_tokens=True))
    vocab = tok.get_vocab()
    for tokens in job['decodeTokens']:
        if not all(t in vocab for t in tokens):
            continue
        ids = [vocab[t] for t in tokens]
        r['decodeCases'].append({'ids': ids, 'decoded': tok.decode(ids), 'decodedSkip': tok.decode(ids, skip_special_tokens=True)})
    out['variants'][name] = r
sys.stdout.write(json.dumps(out, ensure_ascii=False))
"""


def variant_folder(root, name, spec):
    """A folder with the fixture's files and the variant's changes applied."""
    src = os.path.join(FIXTURES, spec['folder'])
    dst = os.path.join(root, name)
    os.makedirs(dst)
    for f in os.listdir(src):
        if spec['fast'] or f != 'tokenizer.json':
            shutil.copyfile(os.path.join(src, f), os.path.join(dst, f))
    with open(os.path.join(src, 'tokenizer_config.json'), encoding='utf-8') as f:
        config = json.load(f)
    config.update(spec['config'])
    write_json(os.path.join(dst, 'tokenizer_config.json'), config)
    changes = spec.get('json')
    if spec['fast'] and changes:
        with open(os.path.join(src, 'tokenizer.json'), encoding='utf-8') as f:
            tok = json.load(f)
        if changes.get('metaspace'):
            tok = metaspace_variant(tok)
        have = {t['id'] for t in tok['added_tokens']}
        tok['added_tokens'] += [t for t in changes.get('addedTokens', []) if t['id'] not in have]
        write_json(os.path.join(dst, 'tokenizer.json'), tok)
    return dst


def run_transformers(python, job):
    proc = subprocess.run([python, '-c', TRANSFORMERS_GOLDENS], input=json.dumps(job).encode('utf-8'), capture_output=True, check=False)
    if proc.returncode != 0:
        sys.exit('%s: transformers goldens failed:\n%s' % (python, proc.stderr.decode('utf-8', 'replace')))
    return json.loads(proc.stdout.decode('utf-8'))


def special_token_goldens(python4, python5):
    """special-token-goldens.json: the reference from `python4` (transformers 4.x), and
    where `python5` (transformers 5.x) gives something else, its answer per string index."""
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {name: variant_folder(tmp, name, spec) for name, spec in SPECIAL_VARIANTS.items()}
        job = {
            'strings': SPECIAL_STRINGS,
            'decodeTokens': SPECIAL_DECODE_TOKENS,
            'variants': {name: {'dir': d, 'fast': SPECIAL_VARIANTS[name]['fast']} for name, d in dirs.items()},
        }
        ref = run_transformers(python4, job)
        other = run_transformers(python5, job) if python5 else None
    variants = {}
    for name, spec in SPECIAL_VARIANTS.items():
        r = ref['variants'][name]
        entry = {
            'folder': spec['folder'],
            'source': 'tokenizer.json' if spec['fast'] else 'sentencepiece',
            'tokenizerConfig': spec['config'],
        }
        if spec.get('json'):
            entry['tokenizerJson'] = spec['json']
        entry['reference'] = 'transformers %s %s' % (ref['version'], r['class'])
        for key in ('encode', 'encodePlain', 'decode', 'decodeSkip', 'decodeCases'):
            entry[key] = r[key]
        if other:
            o = other['variants'][name]
            diff = {}
            for key in ('encode', 'encodePlain', 'decode', 'decodeSkip'):
                d = {str(i): b for i, (a, b) in enumerate(zip(r[key], o[key])) if a != b}
                if d:
                    diff[key] = d
            entry['differences'] = {'transformers %s %s' % (other['version'], o['class']): diff}
        variants[name] = entry
    about = (
        'ids and decoded text of strings with special-token text. Reference: transformers %s; for a '
        'SentencePiece model its slow tokenizer class (T5Tokenizer, LlamaTokenizer), for tokenizer.json its '
        'fast tokenizer (the Rust library on the file as written). "differences" lists, per string index, what '
        'another transformers version gives where it differs (transformers 5 has no slow tokenizers and '
        'rebuilds Llama pipelines); those are not what @peft follows.' % ref['version']
    )
    write_compact_json(
        os.path.join(FIXTURES, 'special-token-goldens.json'),
        {'about': about, 'strings': SPECIAL_STRINGS, 'variants': variants},
        depth=3,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--hf-tokenizers', help='path of the npm package `tokenizers` (Rust binding) for tokenizer.json goldens')
    parser.add_argument('--transformers4', help='python with transformers 4.x and sentencepiece: special-token-goldens.json reference')
    parser.add_argument('--transformers5', help='python with transformers 5.x: its differences, recorded next to the reference')
    parser.add_argument(
        '--special-token-goldens-only',
        action='store_true',
        help='only (re)write special-token-goldens.json from the fixtures as they are (needs --transformers4)',
    )
    args = parser.parse_args()

    if args.special_token_goldens_only:
        if not args.transformers4:
            sys.exit('--special-token-goldens-only needs --transformers4')
        special_token_goldens(args.transformers4, args.transformers5)
        print('special-token-goldens.json written to %s' % os.path.normpath(FIXTURES))
        return
    if spm is None:
        sys.exit('sentencepiece is not importable by %s (see the requirements above)' % sys.executable)

    lines = corpus_lines()
    strings = test_strings()
    with tempfile.TemporaryDirectory() as tmp:
        # relative path: sentencepiece stores it in the model's normalizer_spec
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            write_norm_tsv('norm.tsv')
            for name, (rel, kwargs) in SP_MODELS.items():
                train_sp(lines, 'norm.tsv', os.path.join(FIXTURES, rel), kwargs)
        finally:
            os.chdir(cwd)

    goldens = {'reference': 'sentencepiece ' + spm.__version__, 'strings': strings, 'models': {}}
    for name, (rel, _) in SP_MODELS.items():
        goldens['models'][rel] = sp_goldens(os.path.join(FIXTURES, rel), strings)
    write_compact_json(os.path.join(FIXTURES, 'sp-goldens.json'), goldens, depth=3)

    neox = neox_tokenizer_json(lines)
    write_json(os.path.join(FIXTURES, 'neox-bpe', 'tokenizer.json'), neox)
    sp_bpe = os.path.join(FIXTURES, 'sp-bpe', 'tokenizer.model')
    llama = llama_tokenizer_json(sp_bpe)
    write_json(os.path.join(FIXTURES, 'llama-bpe', 'tokenizer.json'), llama)
    shutil.copyfile(sp_bpe, os.path.join(FIXTURES, 'llama-bpe', 'tokenizer.model'))
    write_configs()

    if args.hf_tokenizers:
        specs = {
            'neox-bpe': {'json': json.dumps(neox)},
            'llama-bpe': {'json': json.dumps(llama)},
            'llama-bpe-metaspace': {'json': json.dumps(metaspace_variant(llama))},
        }
        out = tokenizer_json_goldens(os.path.abspath(args.hf_tokenizers), strings, specs)
        version = json.load(open(os.path.join(args.hf_tokenizers, 'package.json')))['version']
        write_compact_json(
            os.path.join(FIXTURES, 'tokenizer-json-goldens.json'),
            {'reference': 'tokenizers (Rust, npm binding) ' + version, 'strings': strings, 'tokenizers': out},
            depth=3,
        )
    else:
        print('no --hf-tokenizers: tokenizer-json-goldens.json left as it is', file=sys.stderr)

    if args.transformers4:
        special_token_goldens(args.transformers4, args.transformers5)
    else:
        print('no --transformers4: special-token-goldens.json left as it is', file=sys.stderr)

    total = 0
    for root, _, files in os.walk(FIXTURES):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    print('fixtures written to %s (%d bytes)' % (os.path.normpath(FIXTURES), total))


if __name__ == '__main__':
    main()
