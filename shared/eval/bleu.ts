// Corpus BLEU as sacreBLEU computes it with its defaults (sacrebleu.corpus_bleu: tokenize="13a",
// lowercase=false, smooth_method="exp", max_ngram_order=4, effective_order=false, force=false), so a score
// printed here can be compared with any number reported by sacreBLEU.
//
// Why our own: no maintained npm package implements sacreBLEU's corpus BLEU. `bleu-score` on npm is
// sentence-level, uses its own tokenisation and no smoothing, and is not sacreBLEU-compatible; averaging
// sentence scores is not corpus BLEU either (corpus BLEU sums n-gram statistics over the whole corpus first).
//
// Ported from sacrebleu 2.6.0: tokenizers/tokenizer_13a.py, tokenizers/tokenizer_re.py, metrics/bleu.py,
// metrics/base.py and metrics/helpers.py. test/unit/bleu.test.ts checks it against sacreBLEU's own tests.

/** The n-gram order sacreBLEU uses by default (MAX_NGRAM_ORDER). */
const MAX_NGRAM_ORDER = 4;

/** What sacreBLEU's BLEUScore holds; score and precisions are on the 0–100 scale. */
export interface BleuScore {
  readonly score: number;
  /** Clipped n-gram matches, orders 1..4. */
  readonly counts: readonly number[];
  /** Hypothesis n-grams, orders 1..4. */
  readonly totals: readonly number[];
  /** Smoothed n-gram precisions, orders 1..4 (0–100). */
  readonly precisions: readonly number[];
  /** Brevity penalty. */
  readonly bp: number;
  /** Tokens in all hypotheses. */
  readonly sysLen: number;
  /** Sum of the closest reference length per segment. */
  readonly refLen: number;
}

// Python's str.split(), str.rstrip() and str.isspace() use Unicode whitespace, which is not JavaScript's \s:
// Python also counts \x1c-\x1f and \x85, and does not count \ufeff. Using \s would split differently.
const PY_WS = "\\t\\n\\v\\f\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const PY_WS_RUN = new RegExp(`[${PY_WS}]+`, "u");
const PY_WS_TRAILING = new RegExp(`[${PY_WS}]+$`, "u");

/** Python's `s.split()` (no argument): split on whitespace runs, no empty strings. */
function pySplit(s: string): string[] {
  return s.split(PY_WS_RUN).filter((part) => part.length > 0);
}

/** Python's `s.rstrip()`. */
function pyRstrip(s: string): string {
  return s.replace(PY_WS_TRAILING, "");
}

// TokenizerRegexp's rules (tokenizer_re.py), applied in order. The `u` flag makes [^0-9] match a whole code
// point, as Python's re does on str. Python's \1 is $1 here.
const REGEXP_RULES: readonly (readonly [RegExp, string])[] = [
  // Pad every ASCII punctuation/symbol except ' - . , with spaces. Python's class is
  // [\{-\~\[-\` -\&\(-\+\:-\@\/]: { to ~, [ to `, space to &, ( to +, : to @, and /.
  [/([\x7b-\x7e\x5b-\x60\x20-\x26\x28-\x2b\x3a-\x40\x2f])/gu, " $1 "],
  // Tokenize period and comma unless preceded by a digit.
  [/([^0-9])([.,])/gu, "$1 $2 "],
  // Tokenize period and comma unless followed by a digit.
  [/([.,])([^0-9])/gu, " $1 $2"],
  // Tokenize dash when preceded by a digit.
  [/([0-9])(-)/gu, "$1 $2 "],
];

/**
 * sacreBLEU's default "13a" tokenizer (Tokenizer13a, equivalent to mteval-v13a.pl as used by WMT). Returns the
 * tokens joined by single spaces, as sacreBLEU does.
 */
export function tokenize13a(line: string): string {
  // Language-independent part. The order matters: "&amp;lt;" becomes "<", as in sacreBLEU.
  let s = line.replaceAll("<skipped>", "").replaceAll("-\n", "").replaceAll("\n", " ");
  if (s.includes("&")) {
    s = s.replaceAll("&quot;", '"').replaceAll("&amp;", "&").replaceAll("&lt;", "<").replaceAll("&gt;", ">");
  }
  // TokenizerRegexp on the line padded with a space on each side, then one space between tokens.
  s = ` ${s} `;
  for (const [pattern, replacement] of REGEXP_RULES) s = s.replace(pattern, replacement);
  return pySplit(s).join(" ");
}

/** n-gram counts per order: grams[n - 1] maps the n tokens joined by " " (tokens hold no whitespace). */
type NgramCounts = Map<string, number>[];

function extractNgrams(tokens: readonly string[]): NgramCounts {
  const grams: NgramCounts = [];
  for (let n = 1; n <= MAX_NGRAM_ORDER; n++) {
    const counts = new Map<string, number>();
    for (let i = 0; i + n <= tokens.length; i++) {
      const key = tokens.slice(i, i + n).join(" ");
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    grams.push(counts);
  }
  return grams;
}

/** Tokens of one segment as sacreBLEU's BLEU._preprocess_segment makes them (rstrip, then 13a). */
function segmentTokens(segment: string): string[] {
  return pySplit(tokenize13a(pyRstrip(segment)));
}

/** BLEU._get_closest_ref_len: the reference length closest to the hypothesis's; on a tie, the shorter. */
function closestRefLen(hypLen: number, refLens: readonly number[]): number {
  let closestDiff = -1;
  let closestLen = -1;
  for (const refLen of refLens) {
    const diff = Math.abs(hypLen - refLen);
    if (closestDiff === -1 || diff < closestDiff) {
      closestDiff = diff;
      closestLen = refLen;
    } else if (diff === closestDiff && refLen < closestLen) {
      closestLen = refLen;
    }
  }
  return closestLen;
}

/** sacrebleu.utils.my_log: log with log(0) floored to a very low number instead of -Infinity. */
function myLog(x: number): number {
  return x === 0 ? -9999999999 : Math.log(x);
}

/**
 * BLEU from corpus-level sufficient statistics, as sacreBLEU's BLEU.compute_bleu with its corpus defaults
 * (smooth_method="exp", i.e. mteval-v13a's smoothing: the k-th order with no match gets precision
 * 100 / (2^k · total); effective_order=false; order 4). Exposed so statistics summed elsewhere (e.g. over
 * shards) can be scored exactly as one corpus.
 */
export function computeBleu(
  counts: readonly number[],
  totals: readonly number[],
  sysLen: number,
  refLen: number,
): BleuScore {
  if (counts.length !== MAX_NGRAM_ORDER || totals.length !== MAX_NGRAM_ORDER) {
    throw new Error(`computeBleu: counts and totals need ${MAX_NGRAM_ORDER} entries (orders 1..4)`);
  }
  let bp = 1;
  if (sysLen < refLen) bp = sysLen > 0 ? Math.exp(1 - refLen / sysLen) : 0;

  const precisions = new Array<number>(MAX_NGRAM_ORDER).fill(0);
  const result = { counts: [...counts], totals: [...totals], precisions, bp, sysLen, refLen };

  // No match at any order: 0, not a smoothed score (sacreBLEU #141).
  if (!counts.some((c) => c !== 0)) return { score: 0, ...result };

  let smoothMteval = 1;
  for (let n = 1; n <= MAX_NGRAM_ORDER; n++) {
    const correct = counts[n - 1] ?? 0;
    const total = totals[n - 1] ?? 0;
    // No n-grams of this order at all (hypotheses too short): the precision stays 0 and so does BLEU.
    if (total === 0) break;
    if (correct === 0) {
      smoothMteval *= 2;
      precisions[n - 1] = 100 / (smoothMteval * total);
    } else {
      precisions[n - 1] = (100 * correct) / total;
    }
  }

  const logSum = precisions.reduce((sum, p) => sum + myLog(p), 0);
  return { score: bp * Math.exp(logSum / MAX_NGRAM_ORDER), ...result };
}

/**
 * Corpus BLEU with sacreBLEU's defaults (sacrebleu.corpus_bleu(hypotheses, references)). `references` is a
 * list of reference streams as sacreBLEU takes it: references[k][i] is the k-th reference of hypothesis i.
 * Every stream must have one segment per hypothesis; otherwise this throws (sacreBLEU's Python API would
 * silently truncate to the shortest, which hides a misaligned evaluation set).
 */
export function corpusBleu(
  hypotheses: readonly string[],
  references: readonly (readonly string[])[],
): BleuScore {
  if (hypotheses.length === 0) throw new Error("corpusBleu: no hypotheses to score");
  if (references.length === 0) throw new Error("corpusBleu: at least one reference stream is required");
  references.forEach((stream, k) => {
    if (stream.length !== hypotheses.length) {
      throw new Error(
        `corpusBleu: reference stream ${k} has ${stream.length} segments but there are ` +
          `${hypotheses.length} hypotheses (every stream needs one reference per hypothesis)`,
      );
    }
  });

  const counts = new Array<number>(MAX_NGRAM_ORDER).fill(0);
  const totals = new Array<number>(MAX_NGRAM_ORDER).fill(0);
  let sysLen = 0;
  let refLen = 0;

  hypotheses.forEach((hypothesis, i) => {
    // Reference n-grams: for each n-gram, the largest count in any one reference (clipping counts).
    const refMax: NgramCounts = Array.from({ length: MAX_NGRAM_ORDER }, () => new Map<string, number>());
    const refLens: number[] = [];
    for (const stream of references) {
      const tokens = segmentTokens(stream[i] ?? "");
      refLens.push(tokens.length);
      extractNgrams(tokens).forEach((grams, order) => {
        const merged = refMax[order];
        if (merged === undefined) return;
        for (const [gram, count] of grams) merged.set(gram, Math.max(merged.get(gram) ?? 0, count));
      });
    }

    const hypTokens = segmentTokens(hypothesis);
    sysLen += hypTokens.length;
    refLen += closestRefLen(hypTokens.length, refLens);

    extractNgrams(hypTokens).forEach((grams, order) => {
      const refGrams = refMax[order];
      let correct = 0;
      let total = 0;
      for (const [gram, count] of grams) {
        total += count;
        correct += Math.min(count, refGrams?.get(gram) ?? 0);
      }
      counts[order] = (counts[order] ?? 0) + correct;
      totals[order] = (totals[order] ?? 0) + total;
    });
  });

  return computeBleu(counts, totals, sysLen, refLen);
}
