#!/usr/bin/env python3
"""Golden fixtures for @peft/metrics.

Writes packages/metrics/src/fixtures/classification.json (scikit-learn) and
packages/metrics/src/fixtures/entity.json (seqeval). Run from anywhere with a Python that has
scikit-learn and numpy (on Debian: `apt-get install python3-sklearn`, then `/usr/bin/python3
packages/metrics/scripts/make-goldens.py`). Fixed seeds: rerunning gives the same files for the
same library versions; the versions are recorded in the fixtures.

scikit-learn: this machine has Debian's 1.2.1. The TypeScript code follows current scikit-learn
(>= 1.3). For the inputs generated here the two agree, except for one case that is ported below
(`_nanaverage` in 'weighted' averages when every selected label has zero support: 1.3+ falls back
to the unweighted mean, 1.2 returned fixed values), and `classification_report`'s 'accuracy' row,
which 1.3+ prints whenever `labels` covers every label present (1.2: only when equal). Those
cases are computed with a port of the newer code and flagged "ported" / "reportPorted". The
report texts are made by 1.2.1's `classification_report` with its `precision_recall_fscore_support`
swapped for `prfs_current` (the 1.3+ F-score formula), so ties round as current sklearn prints them. zero_division=NaN and beta=0 (both 1.3+) are tested by hand in
TypeScript, not here.

seqeval: not installable here (no network for pip). If `import seqeval` works it is used;
otherwise a faithful port of seqeval 1.2.2 (`metrics/sequence_labeling.py: get_entities,
end_of_chunk, start_of_chunk`, `scheme.py: Token, IOB1..BILOU, Tokens`, `metrics/v1.py:
_precision_recall_fscore_support`, `reporters.py: StringReporter`) written below is used. The
fixture records which.
"""

import enum
import json
import os
import random
import sys
import warnings
from collections import defaultdict
from itertools import chain

import numpy as np
import sklearn
from sklearn import metrics as skm

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, '..', 'src', 'fixtures')

warnings.simplefilter('ignore')


def num(x):
    """JSON-safe float: NaN -> None; 15 significant digits keep the fixtures small (tests use 1e-12)."""
    x = float(x)
    return None if np.isnan(x) else float('%.15g' % x)


def nums(xs):
    return [num(x) for x in xs]


# ----------------------------------------------------------------------------------------------
# scikit-learn
# ----------------------------------------------------------------------------------------------

def nanaverage_current(a, weights=None):
    """sklearn >= 1.3 `sklearn.utils.extmath._nanaverage`."""
    a = np.asarray(a, dtype=float)
    if len(a) == 0:
        return np.nan
    mask = np.isnan(a)
    if mask.all():
        return np.nan
    if weights is None:
        return np.average(a[~mask])
    weights = np.asarray(weights, dtype=float)
    a, weights = a[~mask], weights[~mask]
    if weights.sum() == 0:
        return np.average(a)
    return np.average(a, weights=weights)


def prfs_current(y_true, y_pred, *, beta=1.0, labels=None, pos_label=1, average=None,
                 warn_for=('precision', 'recall', 'f-score'), sample_weight=None, zero_division='warn'):
    """sklearn >= 1.3 `precision_recall_fscore_support` (no warnings), on 1.2's own helpers.

    The F-score is (1 + b^2) tp / (b^2 (tp + fn) + tp + fp), not computed from the rounded
    precision and recall as 1.2 did: equal to ~1e-16, but enough to flip a printed digit when a
    value sits on a rounding tie, so the report texts below are made with this.
    """
    from sklearn.metrics._classification import _check_set_wise_labels
    labels = _check_set_wise_labels(y_true, y_pred, average, labels, pos_label)
    mcm = skm.multilabel_confusion_matrix(y_true, y_pred, sample_weight=sample_weight, labels=labels)
    tp_sum = mcm[:, 1, 1]
    pred_sum = tp_sum + mcm[:, 0, 1]
    true_sum = tp_sum + mcm[:, 1, 0]
    if average == 'micro':
        tp_sum, pred_sum, true_sum = (np.array([x.sum()]) for x in (tp_sum, pred_sum, true_sum))
    zd = 0.0 if zero_division == 'warn' else float(zero_division)

    def divide(n, d):
        d = np.asarray(d, dtype=float).copy()
        mask = d == 0
        d[mask] = 1
        r = np.asarray(n, dtype=float) / d
        r[mask] = zd
        return r

    precision = divide(tp_sum, pred_sum)
    recall = divide(tp_sum, true_sum)
    beta2 = beta ** 2
    if np.isposinf(beta):
        f_score = recall
    elif beta == 0:
        f_score = precision
    else:
        f_score = divide((1 + beta2) * tp_sum, beta2 * np.asarray(true_sum, dtype=float) + pred_sum)
    if average is not None:
        weights = true_sum if average == 'weighted' else None
        return (np.float64(nanaverage_current(precision, weights)), np.float64(nanaverage_current(recall, weights)),
                np.float64(nanaverage_current(f_score, weights)), None)
    return precision, recall, f_score, true_sum


def prfs(y_true, y_pred, **kw):
    """precision_recall_fscore_support with current (>= 1.3) averaging; returns (result, ported)."""
    average = kw.pop('average', None)
    if average == 'weighted':
        per = skm.precision_recall_fscore_support(y_true, y_pred, average=None, **kw)
        if float(np.sum(per[3])) == 0:
            return tuple(nanaverage_current(v, per[3]) for v in per[:3]) + (None,), True
    return skm.precision_recall_fscore_support(y_true, y_pred, average=average, **kw), False


def make_classification_cases(rng, n_cases):
    cases = []
    for case_id in range(n_cases):
        strings = rng.random() < 0.4
        pool_size = rng.choice([1, 2, 2, 3, 4, 5])
        if strings:
            pool = rng.sample(['ant', 'bird', 'cat', 'dog', 'eel', 'fox', 'Gnu', 'élan', 'class 2'], pool_size)
        else:
            pool = rng.sample([0, 1, 2, 3, 4, 5, 7, 10, -1], pool_size)
        n = rng.randint(1, 14)
        skew = rng.random()
        y_true = [rng.choice(pool) for _ in range(n)]
        y_pred = [t if rng.random() < skew else rng.choice(pool) for t in y_true]
        present = sorted(set(y_true) | set(y_pred))
        extra = [x for x in (['zebra', 'aardvark'] if strings else [8, 9, -5]) if x not in present]

        labels = None
        unlisted = None
        mode = rng.random()
        if mode < 0.35:
            labels = None
        elif mode < 0.7:
            labels = present + rng.sample(extra, rng.randint(0, 2))  # absent labels
            rng.shuffle(labels)
        else:
            keep = rng.sample(present, rng.randint(1, len(present)))  # a subset: sklearn ignores the rest
            labels = keep + rng.sample(extra, rng.randint(0, 1))
            rng.shuffle(labels)
            unlisted = 'ignore'

        average = rng.choice([None, 'micro', 'macro', 'weighted', 'binary'])
        zero_division = rng.choice([0, 1, 'warn'])
        beta = rng.choice([1, 1, 0.5, 2, 3])
        weights = [rng.choice([0.5, 1, 2, 3, 0.25]) for _ in range(n)] if rng.random() < 0.25 else None
        pos_label = rng.choice(present) if (average == 'binary' and rng.random() < 0.8) else 1
        if strings and average == 'binary' and pos_label == 1:
            pos_label = present[-1]

        kw = dict(labels=labels, average=average, zero_division=zero_division, sample_weight=weights)
        if average == 'binary':
            kw['pos_label'] = pos_label
        case = dict(id=case_id, yTrue=y_true, yPred=y_pred, labels=labels, unlistedLabels=unlisted,
                    average=average, zeroDivision=zero_division, beta=beta, sampleWeight=weights,
                    posLabel=kw.get('pos_label'))

        # accuracy
        case['accuracy'] = num(skm.accuracy_score(y_true, y_pred, sample_weight=weights))
        case['accuracyCount'] = num(skm.accuracy_score(y_true, y_pred, normalize=False, sample_weight=weights))

        # precision_recall_fscore_support and the single scores
        try:
            (p, r, f, s), ported = prfs(y_true, y_pred, beta=beta, **kw)
            case['prfs'] = dict(precision=num(p) if average else nums(p), recall=num(r) if average else nums(r),
                                fscore=num(f) if average else nums(f),
                                support=None if s is None else nums(s))
            if ported:
                case['ported'] = True
            singles = {}
            for name, fn, extra_kw in [('precision', skm.precision_score, {}), ('recall', skm.recall_score, {}),
                                       ('f1', skm.f1_score, {}), ('fbeta', skm.fbeta_score, {'beta': beta})]:
                if ported:
                    (pp, rr, ff, _), _ = prfs(y_true, y_pred, beta=extra_kw.get('beta', 1), **kw)
                    v = {'precision': pp, 'recall': rr, 'f1': ff, 'fbeta': ff}[name]
                else:
                    v = fn(y_true, y_pred, **kw, **extra_kw)
                singles[name] = num(v) if average else nums(v)
            case['scores'] = singles
        except ValueError as e:
            case['prfsError'] = str(e)

        # confusion matrix
        cm_norm = rng.choice([None, None, 'true', 'pred', 'all'])
        case['cmNormalize'] = cm_norm
        try:
            cm = skm.confusion_matrix(y_true, y_pred, labels=labels, sample_weight=weights, normalize=cm_norm)
            case['confusionMatrix'] = [nums(row) for row in cm]
        except ValueError as e:
            case['confusionMatrixError'] = str(e)

        # classification report (no sample weights: keeps the support column integral)
        digits = rng.choice([2, 2, 3, 4, 6])
        target_names = None
        report_labels = labels
        if rng.random() < 0.3:
            k = len(report_labels) if report_labels is not None else len(present)
            target_names = [rng.choice(['class ', 'C', 'very long class name ', 'ü']) + str(i) for i in range(k)]
        case['report'] = dict(digits=digits, targetNames=target_names)
        import sklearn.metrics._classification as skc
        original = skc.precision_recall_fscore_support
        skc.precision_recall_fscore_support = prfs_current
        try:
            text = skm.classification_report(y_true, y_pred, labels=report_labels, target_names=target_names,
                                             digits=digits, zero_division=zero_division)
            d = skm.classification_report(y_true, y_pred, labels=report_labels, target_names=target_names,
                                          digits=digits, zero_division=zero_division, output_dict=True)
            # sklearn >= 1.3 prints an 'accuracy' row whenever labels ⊇ the labels present (1.2: only when equal)
            if (report_labels is not None and set(report_labels) > set(present)
                    and 'micro avg' in d):
                case['reportPorted'] = True
                names = target_names if target_names is not None else ['%s' % l for l in report_labels]
                width = max(max(len(cn) for cn in names), len('weighted avg'), digits)
                micro = d.pop('micro avg')
                old_line = next(line for line in text.split('\n') if line.strip().startswith('micro avg'))
                new_line = ('{:>{width}s} ' + ' {:>9.{digits}}' * 2 + ' {:>9.{digits}f}' + ' {:>9}').format(
                    'accuracy', '', '', micro['f1-score'], micro['support'], width=width, digits=digits)
                text = text.replace(old_line, new_line)
                rebuilt = {}
                for k, v in d.items():
                    if k == 'macro avg':
                        rebuilt['accuracy'] = micro['precision']
                    rebuilt[k] = v
                d = rebuilt
            case['report']['text'] = text
            if case_id % 4 == 0:
                case['report']['dict'] = {k: (num(v) if not isinstance(v, dict) else {kk: num(vv) for kk, vv in v.items()})
                                      for k, v in d.items()}
        except ValueError as e:
            case['report']['error'] = str(e)
        finally:
            skc.precision_recall_fscore_support = original
        cases.append(case)
    return cases


# ----------------------------------------------------------------------------------------------
# seqeval (port of 1.2.2, used when seqeval is not importable)
# ----------------------------------------------------------------------------------------------

try:
    import seqeval  # noqa: F401
    from seqeval.metrics.sequence_labeling import get_entities as sq_get_entities
    from seqeval.metrics import precision_recall_fscore_support as sq_prfs
    from seqeval.metrics import classification_report as sq_report
    from seqeval import scheme as sq_scheme
    SEQEVAL = 'seqeval ' + getattr(seqeval, '__version__', '?')
except ImportError:
    SEQEVAL = None


def get_entities(seq, suffix=False):
    if any(isinstance(s, list) for s in seq):
        seq = [item for sublist in seq for item in sublist + ['O']]
    prev_tag = 'O'
    prev_type = ''
    begin_offset = 0
    chunks = []
    for i, chunk in enumerate(seq + ['O']):
        if suffix:
            tag = chunk[-1]
            type_ = chunk[:-1].rsplit('-', maxsplit=1)[0] or '_'
        else:
            tag = chunk[0]
            type_ = chunk[1:].split('-', maxsplit=1)[-1] or '_'
        if end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin_offset, i - 1))
        if start_of_chunk(prev_tag, tag, prev_type, type_):
            begin_offset = i
        prev_tag = tag
        prev_type = type_
    return chunks


def end_of_chunk(prev_tag, tag, prev_type, type_):
    chunk_end = False
    if prev_tag == 'E':
        chunk_end = True
    if prev_tag == 'S':
        chunk_end = True
    if prev_tag == 'B' and tag == 'B':
        chunk_end = True
    if prev_tag == 'B' and tag == 'S':
        chunk_end = True
    if prev_tag == 'B' and tag == 'O':
        chunk_end = True
    if prev_tag == 'I' and tag == 'B':
        chunk_end = True
    if prev_tag == 'I' and tag == 'S':
        chunk_end = True
    if prev_tag == 'I' and tag == 'O':
        chunk_end = True
    if prev_tag != 'O' and prev_tag != '.' and prev_type != type_:
        chunk_end = True
    return chunk_end


def start_of_chunk(prev_tag, tag, prev_type, type_):
    chunk_start = False
    if tag == 'B':
        chunk_start = True
    if tag == 'S':
        chunk_start = True
    if prev_tag == 'E' and tag == 'E':
        chunk_start = True
    if prev_tag == 'E' and tag == 'I':
        chunk_start = True
    if prev_tag == 'S' and tag == 'E':
        chunk_start = True
    if prev_tag == 'S' and tag == 'I':
        chunk_start = True
    if prev_tag == 'O' and tag == 'E':
        chunk_start = True
    if prev_tag == 'O' and tag == 'I':
        chunk_start = True
    if tag != 'O' and tag != '.' and prev_type != type_:
        chunk_start = True
    return chunk_start


class Prefix(enum.Flag):
    I = enum.auto()  # noqa: E741
    O = enum.auto()  # noqa: E741
    B = enum.auto()
    E = enum.auto()
    S = enum.auto()
    U = enum.auto()
    L = enum.auto()
    ANY = I | O | B | E | S | U | L


Prefixes = dict(Prefix.__members__)


class Tag(enum.Flag):
    SAME = enum.auto()
    DIFF = enum.auto()
    ANY = SAME | DIFF


class Token:
    allowed_prefix = None
    start_patterns = None
    inside_patterns = None
    end_patterns = None

    def __init__(self, token, suffix=False, delimiter='-'):
        self.token = token
        self.prefix = Prefixes[token[-1]] if suffix else Prefixes[token[0]]
        tag = token[:-1] if suffix else token[1:]
        self.tag = tag.strip(delimiter) or '_'

    def is_valid(self):
        if self.prefix not in self.allowed_prefix:
            raise ValueError('Invalid token is found: {}.'.format(self.token))
        return True

    def is_start(self, prev):
        return self.check_patterns(prev, self.start_patterns)

    def is_inside(self, prev):
        return self.check_patterns(prev, self.inside_patterns)

    def is_end(self, prev):
        return self.check_patterns(prev, self.end_patterns)

    def check_tag(self, prev, cond):
        if cond == Tag.ANY:
            return True
        if prev.tag == self.tag and cond == Tag.SAME:
            return True
        if prev.tag != self.tag and cond == Tag.DIFF:
            return True
        return False

    def check_patterns(self, prev, patterns):
        for prev_prefix, current_prefix, tag_cond in patterns:
            if prev.prefix in prev_prefix and self.prefix in current_prefix and self.check_tag(prev, tag_cond):
                return True
        return False


class IOB1(Token):
    allowed_prefix = Prefix.I | Prefix.O | Prefix.B
    start_patterns = {(Prefix.O, Prefix.I, Tag.ANY), (Prefix.I, Prefix.I, Tag.DIFF), (Prefix.B, Prefix.I, Tag.ANY),
                      (Prefix.I, Prefix.B, Tag.SAME), (Prefix.B, Prefix.B, Tag.SAME)}
    inside_patterns = {(Prefix.B, Prefix.I, Tag.SAME), (Prefix.I, Prefix.I, Tag.SAME)}
    end_patterns = {(Prefix.I, Prefix.I, Tag.DIFF), (Prefix.I, Prefix.O, Tag.ANY), (Prefix.I, Prefix.B, Tag.ANY),
                    (Prefix.B, Prefix.O, Tag.ANY), (Prefix.B, Prefix.I, Tag.DIFF), (Prefix.B, Prefix.B, Tag.SAME)}


class IOE1(Token):
    allowed_prefix = Prefix.I | Prefix.O | Prefix.E
    start_patterns = {(Prefix.O, Prefix.I, Tag.ANY), (Prefix.I, Prefix.I, Tag.DIFF), (Prefix.E, Prefix.I, Tag.ANY),
                      (Prefix.E, Prefix.E, Tag.SAME)}
    inside_patterns = {(Prefix.I, Prefix.I, Tag.SAME), (Prefix.I, Prefix.E, Tag.SAME)}
    end_patterns = {(Prefix.I, Prefix.I, Tag.DIFF), (Prefix.I, Prefix.O, Tag.ANY), (Prefix.I, Prefix.E, Tag.DIFF),
                    (Prefix.E, Prefix.I, Tag.SAME), (Prefix.E, Prefix.E, Tag.SAME)}


class IOB2(Token):
    allowed_prefix = Prefix.I | Prefix.O | Prefix.B
    start_patterns = {(Prefix.ANY, Prefix.B, Tag.ANY)}
    inside_patterns = {(Prefix.B, Prefix.I, Tag.SAME), (Prefix.I, Prefix.I, Tag.SAME)}
    end_patterns = {(Prefix.I, Prefix.O, Tag.ANY), (Prefix.I, Prefix.I, Tag.DIFF), (Prefix.I, Prefix.B, Tag.ANY),
                    (Prefix.B, Prefix.O, Tag.ANY), (Prefix.B, Prefix.I, Tag.DIFF), (Prefix.B, Prefix.B, Tag.ANY)}


class IOE2(Token):
    allowed_prefix = Prefix.I | Prefix.O | Prefix.E
    start_patterns = {(Prefix.O, Prefix.I, Tag.ANY), (Prefix.O, Prefix.E, Tag.ANY), (Prefix.E, Prefix.I, Tag.ANY),
                      (Prefix.E, Prefix.E, Tag.ANY), (Prefix.I, Prefix.I, Tag.DIFF), (Prefix.I, Prefix.E, Tag.DIFF)}
    inside_patterns = {(Prefix.I, Prefix.E, Tag.SAME), (Prefix.I, Prefix.I, Tag.SAME)}
    end_patterns = {(Prefix.E, Prefix.ANY, Tag.ANY)}


class IOBES(Token):
    allowed_prefix = Prefix.I | Prefix.O | Prefix.B | Prefix.E | Prefix.S
    start_patterns = {(Prefix.ANY, Prefix.B, Tag.ANY), (Prefix.ANY, Prefix.S, Tag.ANY)}
    inside_patterns = {(Prefix.B, Prefix.I, Tag.SAME), (Prefix.B, Prefix.E, Tag.SAME), (Prefix.I, Prefix.I, Tag.SAME),
                       (Prefix.I, Prefix.E, Tag.SAME)}
    end_patterns = {(Prefix.S, Prefix.ANY, Tag.ANY), (Prefix.E, Prefix.ANY, Tag.ANY)}


class BILOU(Token):
    allowed_prefix = Prefix.B | Prefix.I | Prefix.L | Prefix.O | Prefix.U
    start_patterns = {(Prefix.ANY, Prefix.B, Tag.ANY), (Prefix.ANY, Prefix.U, Tag.ANY)}
    inside_patterns = {(Prefix.B, Prefix.I, Tag.SAME), (Prefix.B, Prefix.L, Tag.SAME), (Prefix.I, Prefix.I, Tag.SAME),
                       (Prefix.I, Prefix.L, Tag.SAME)}
    end_patterns = {(Prefix.U, Prefix.ANY, Tag.ANY), (Prefix.L, Prefix.ANY, Tag.ANY)}


SCHEMES = dict(IOB1=IOB1, IOE1=IOE1, IOB2=IOB2, IOE2=IOE2, IOBES=IOBES, BILOU=BILOU)


class Tokens:
    def __init__(self, tokens, scheme, suffix=False, delimiter='-', sent_id=None):
        self.outside_token = scheme('O', suffix=suffix, delimiter=delimiter)
        self.tokens = [scheme(token, suffix=suffix, delimiter=delimiter) for token in tokens]
        self.extended_tokens = self.tokens + [self.outside_token]
        self.sent_id = sent_id

    @property
    def entities(self):
        i = 0
        entities = []
        prev = self.outside_token
        while i < len(self.extended_tokens):
            token = self.extended_tokens[i]
            token.is_valid()
            if token.is_start(prev):
                end = self._forward(start=i + 1, prev=token)
                if self._is_end(end):
                    entities.append((self.sent_id, token.tag, i, end))
                i = end
            else:
                i += 1
            prev = self.extended_tokens[i - 1]
        return entities

    def _forward(self, start, prev):
        for i, token in enumerate(self.extended_tokens[start:], start):
            if token.is_inside(prev):
                prev = token
            else:
                return i
        return len(self.tokens) - 1

    def _is_end(self, i):
        token = self.extended_tokens[i]
        prev = self.extended_tokens[i - 1]
        return token.is_end(prev)


def _prf_divide(numerator, denominator, zero_division):
    mask = denominator == 0.0
    denominator = denominator.copy()
    denominator[mask] = 1
    result = numerator / denominator
    if not np.any(mask):
        return result
    result[mask] = 0.0 if zero_division in ['warn', 0] else 1.0
    return result


def seqeval_prfs(pred_sum, tp_sum, true_sum, average, beta=1.0, zero_division='warn'):
    """seqeval.metrics.v1._precision_recall_fscore_support after extract_tp_actual_correct."""
    if average == 'micro':
        tp_sum = np.array([tp_sum.sum()])
        pred_sum = np.array([pred_sum.sum()])
        true_sum = np.array([true_sum.sum()])
    beta2 = beta ** 2
    precision = _prf_divide(tp_sum, pred_sum, zero_division)
    recall = _prf_divide(tp_sum, true_sum, zero_division)
    if np.isposinf(beta):
        f_score = recall
    else:
        denom = beta2 * precision + recall
        denom[denom == 0.] = 1
        f_score = (1 + beta2) * precision * recall / denom
    if average == 'weighted':
        weights = true_sum
        if weights.sum() == 0:
            zero_division_value = 0.0 if zero_division in ['warn', 0] else 1.0
            return (zero_division_value if pred_sum.sum() == 0 else 0.0,
                    zero_division_value,
                    zero_division_value if pred_sum.sum() == 0 else 0.0,
                    sum(true_sum))
    else:
        weights = None
    if average is not None:
        precision = np.average(precision, weights=weights)
        recall = np.average(recall, weights=weights)
        f_score = np.average(f_score, weights=weights)
        true_sum = sum(true_sum)
    return precision, recall, f_score, true_sum


def extract_counts(y_true, y_pred, mode, scheme, suffix):
    if mode == 'strict':
        cls = SCHEMES[scheme]
        ents_true = [e for sid, s in enumerate(y_true) for e in Tokens(s, cls, suffix, sent_id=sid).entities]
        ents_pred = [e for sid, s in enumerate(y_pred) for e in Tokens(s, cls, suffix, sent_id=sid).entities]
        t = defaultdict(set)
        p = defaultdict(set)
        for sid, tag, s, e in ents_true:
            t[tag].add((sid, s, e))
        for sid, tag, s, e in ents_pred:
            p[tag].add((sid, s, e))
    else:
        t = defaultdict(set)
        p = defaultdict(set)
        for type_name, start, end in get_entities(y_true, suffix):
            t[type_name].add((start, end))
        for type_name, start, end in get_entities(y_pred, suffix):
            p[type_name].add((start, end))
    names = sorted(set(t.keys()) | set(p.keys()))
    tp = np.array([len(t.get(n, set()) & p.get(n, set())) for n in names], dtype=np.int64)
    ps = np.array([len(p.get(n, set())) for n in names], dtype=np.int64)
    ts = np.array([len(t.get(n, set())) for n in names], dtype=np.int64)
    return names, ps, tp, ts


def seqeval_report(names, ps, tp, ts, digits, zero_division):
    """seqeval classification_report text (StringReporter)."""
    name_width = max(map(len, names))  # raises on no entities, as seqeval does
    width = max(name_width, len('weighted avg'), digits)
    row_fmt = '{:>{width}s} ' + ' {:>9.{digits}f}' * 3 + ' {:>9}'
    buffer = []
    p, r, f, s = seqeval_prfs(ps, tp, ts, None, zero_division=zero_division)
    for row in zip(names, p, r, f, s):
        buffer.append(row_fmt.format(*row, width=width, digits=digits))
    buffer.append('')
    for average in ('micro', 'macro', 'weighted'):
        ap, ar, af, sup = seqeval_prfs(ps, tp, ts, average, zero_division=zero_division)
        buffer.append(row_fmt.format('{} avg'.format(average), ap, ar, af, sup, width=width, digits=digits))
    buffer.append('')
    head_fmt = '{:>{width}s} ' + ' {:>9}' * 4
    report = head_fmt.format('', 'precision', 'recall', 'f1-score', 'support', width=width) + '\n\n'
    return report + '\n'.join(buffer)


def random_tags(rng, scheme_kind, n, weird):
    types = ['PER', 'LOC', 'MISC', 'ORG-X']
    prefixes = {'IOB': 'BIO', 'IOE': 'EIO', 'IOBES': 'BIOES', 'BILOU': 'BILOU'}[scheme_kind]
    out = []
    for _ in range(n):
        pfx = rng.choice(prefixes + 'OO')
        if pfx == 'O':
            out.append('O')
        else:
            out.append(pfx + '-' + rng.choice(types[:rng.choice([1, 2, 3, 4])]))
    if weird and n > 0:
        i = rng.randrange(n)
        out[i] = rng.choice(['B', 'I', 'X-PER', 'I-', 'B--PER', 'E', 'S', '.', 'PER'])
    return out


def entities_of(y_true, mode, scheme, suffix):
    """Entities of the true sequences: flat (default mode, end exclusive) or per sentence (strict)."""
    if mode == 'default':
        fn = sq_get_entities if SEQEVAL else get_entities
        return [[t, s, e + 1] for t, s, e in fn(y_true, suffix)]
    if SEQEVAL:
        cls = getattr(sq_scheme, scheme)
        return [[[e.tag, e.start, e.end] for e in sq_scheme.Tokens(sent, cls, suffix=suffix).entities]
                for sent in y_true]
    cls = SCHEMES[scheme]
    return [[[tag, s, e] for _, tag, s, e in Tokens(sent, cls, suffix).entities] for sent in y_true]


def scores_with_seqeval(y_true, y_pred, mode, scheme, suffix, zero_division):
    kw = dict(zero_division=zero_division, suffix=suffix)
    if mode == 'strict':
        from seqeval.metrics.v1 import precision_recall_fscore_support as prfs_v1
        fn = lambda **k: prfs_v1(y_true, y_pred, scheme=getattr(sq_scheme, scheme), **kw, **k)  # noqa: E731
    else:
        fn = lambda **k: sq_prfs(y_true, y_pred, **kw, **k)  # noqa: E731
    res = {}
    for average in (None, 'micro', 'macro', 'weighted'):
        p, r, f, s = fn(average=average)
        if average is None:
            res['none'] = dict(precision=nums(p), recall=nums(r), f1=nums(f), support=[int(x) for x in s])
        else:
            res[average] = dict(precision=num(p), recall=num(r), f1=num(f), support=int(s))
    return res


def make_entity_cases(rng, n_cases):
    cases = []
    for case_id in range(n_cases):
        mode = rng.choice(['default', 'default', 'strict'])
        kind = rng.choice(['IOB', 'IOB', 'IOBES', 'IOE'] + (['BILOU'] if mode == 'strict' else []))
        scheme = {'IOB': rng.choice(['IOB2', 'IOB2', 'IOB1']), 'IOE': rng.choice(['IOE2', 'IOE1']),
                  'IOBES': 'IOBES', 'BILOU': 'BILOU'}[kind]
        suffix = rng.random() < 0.1
        weird = mode == 'default' and rng.random() < 0.3
        n_sent = rng.randint(1, 4)
        y_true, y_pred = [], []
        for _ in range(n_sent):
            n = rng.randint(0, 8)
            t = random_tags(rng, kind, n, weird)
            p = [x if rng.random() < 0.6 else random_tags(rng, kind, 1, False)[0] for x in t]
            y_true.append(t)
            y_pred.append(p)
        if suffix:
            def flip(tag):
                if tag in ('O',) or '-' not in tag:
                    return tag
                pfx, typ = tag.split('-', 1)
                return typ + '-' + pfx
            y_true = [[flip(x) for x in s] for s in y_true]
            y_pred = [[flip(x) for x in s] for s in y_pred]
        zero_division = rng.choice([0, 1, 'warn'])
        digits = rng.choice([2, 2, 4])
        case = dict(id=case_id, mode=mode, scheme=scheme, suffix=suffix, yTrue=y_true, yPred=y_pred,
                    zeroDivision=zero_division, digits=digits)
        try:
            case['entitiesTrue'] = entities_of(y_true, mode, scheme, suffix)
            names, ps, tp, ts = extract_counts(y_true, y_pred, mode, scheme, suffix)
            case['types'] = names
            res = {}
            for average in (None, 'micro', 'macro', 'weighted'):
                p, r, f, s = seqeval_prfs(ps, tp, ts, average, zero_division=zero_division)
                key = average or 'none'
                if average is None:
                    res[key] = dict(precision=nums(p), recall=nums(r), f1=nums(f), support=[int(x) for x in s])
                else:
                    res[key] = dict(precision=num(p), recall=num(r), f1=num(f), support=int(s))
            case['scores'] = scores_with_seqeval(y_true, y_pred, mode, scheme, suffix, zero_division) if SEQEVAL else res
            if case_id % 2 == 0:
                try:
                    case['report'] = seqeval_report(names, ps, tp, ts, digits, zero_division)
                except ValueError:
                    case['report'] = None  # seqeval raises with no entity at all
        except (ValueError, KeyError) as e:
            case['error'] = str(e)
        cases.append(case)
    return cases


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = random.Random(20240611)
    classification = dict(
        generator='packages/metrics/scripts/make-goldens.py',
        sklearn=sklearn.__version__, numpy=np.__version__, python=sys.version.split()[0],
        cases=make_classification_cases(rng, 1000),
    )
    with open(os.path.join(OUT, 'classification.json'), 'w') as fh:
        json.dump(classification, fh, separators=(',', ':'), ensure_ascii=False)
    entity = dict(
        generator='packages/metrics/scripts/make-goldens.py',
        seqeval=SEQEVAL or 'port of seqeval 1.2.2 (seqeval not installable here)',
        numpy=np.__version__,
        cases=make_entity_cases(random.Random(7), 1000),
    )
    with open(os.path.join(OUT, 'entity.json'), 'w') as fh:
        json.dump(entity, fh, separators=(',', ':'), ensure_ascii=False)
    for name in ('classification.json', 'entity.json'):
        print(name, os.path.getsize(os.path.join(OUT, name)), 'bytes')


if __name__ == '__main__':
    main()
