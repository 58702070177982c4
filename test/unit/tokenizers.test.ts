import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { UserError } from "../../shared/errors.js";
import {
  ByteTokenizer,
  Gpt2Tokenizer,
  HuggingFaceTokenizer,
  loadTokenizer,
} from "../../shared/data/tokenizers/index.js";

const NON_ASCII = "naïve 日本語 🙂";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "imtrain-tokenizers-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** GPT-2's byte-to-printable-character table, which ByteLevel pre-tokenizers and decoders use. */
function bytesToUnicode(): string[] {
  const printable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const table: string[] = [];
  let extra = 0;
  for (let b = 0; b < 256; b++) table.push(String.fromCodePoint(printable(b) ? b : 256 + extra++));
  return table;
}

/** A byte-level BPE whose single-character ids equal the byte values, with merges up to "hell" and "Ġw". */
function tinyTokenizerJson(): object {
  const vocab: Record<string, number> = {};
  bytesToUnicode().forEach((ch, b) => (vocab[ch] = b));
  Object.assign(vocab, { he: 256, ll: 257, hell: 258, Ġw: 259 });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: 260,
        content: "</s>",
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: ["h e", "l l", "he ll", "Ġ w"],
    },
  };
}

test("byte tokenizer encodes text as its UTF-8 bytes and round-trips non-ASCII text", () => {
  const tok = new ByteTokenizer();
  const ids = tok.encode(NON_ASCII);
  assert.deepEqual(ids, Array.from(Buffer.from(NON_ASCII, "utf8")));
  assert.equal(tok.decode(ids), NON_ASCII);
  assert.equal(tok.decode(tok.encode("\uFEFFbom")), "\uFEFFbom");
  assert.equal(tok.vocabSize, 257);
  assert.equal(tok.eosId, 256);
});

test("byte tokenizer renders eos as </s>, keeps the text </s> as bytes, and decodes bad UTF-8 leniently", () => {
  const tok = new ByteTokenizer();
  assert.equal(tok.decode([...tok.encode("hi"), 256]), "hi</s>");
  assert.ok(!tok.encode("a</s>b").includes(256));
  // A lone continuation byte and a character cut after its first byte.
  assert.equal(tok.decode([0x61, 0x80, 0x62, 0xe6, 256]), "a\uFFFDb\uFFFD</s>");
  assert.equal(tok.decode([0x61, 999]), "a\uFFFD");
});

test("gpt2 tokenizer gives GPT-2's ids and round-trips text", async () => {
  const tok = await Gpt2Tokenizer.load();
  assert.deepEqual(tok.encode("Hello world"), [15496, 995]);
  assert.equal(tok.decode(tok.encode(NON_ASCII)), NON_ASCII);
  assert.equal(tok.decode(tok.encode("\uFEFFbom")), "\uFEFFbom");
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.eosId, 50256);
  assert.equal(tok.decode([15496, 50256]), "Hello<|endoftext|>");
});

test("gpt2 tokenizer encodes text that spells <|endoftext|> as ordinary text", async () => {
  const tok = await loadTokenizer("gpt2");
  const text = "a <|endoftext|> b";
  const ids = tok.encode(text);
  assert.ok(!ids.includes(50256));
  assert.equal(tok.decode(ids), text);
});

test("huggingface tokenizer.json applies its merges, round-trips text and picks </s> as eos", async () => {
  await withTempDir(async (dir) => {
    await writeFile(join(dir, "tokenizer.json"), JSON.stringify(tinyTokenizerJson()));
    const tok = await loadTokenizer(dir);
    assert.ok(tok instanceof HuggingFaceTokenizer);
    assert.equal(tok.name, `hf:${dir}`);
    // "hello" → hell + o; " world" → Ġw + o r l d (single characters have their byte values as ids).
    assert.deepEqual(tok.encode("hello world"), [258, 111, 259, 111, 114, 108, 100]);
    assert.equal(tok.eosId, 260);
    assert.equal(tok.vocabSize, 261);
    assert.equal(tok.decode([...tok.encode("hello"), 260]), "hello</s>");
    assert.equal(tok.decode(tok.encode(NON_ASCII)), NON_ASCII);
    assert.deepEqual(tok.encode(""), []);
    assert.equal(tok.decode([]), "");
  });
});

test("huggingface tokenizer encodes text that spells a special token as ordinary text, without BOS", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "tokenizer.json");
    await writeFile(file, JSON.stringify(tinyTokenizerJson()));
    const tok = await loadTokenizer(file);
    const ids = tok.encode("he</s>");
    assert.deepEqual(ids.slice(0, 1), [256]);
    assert.ok(!ids.includes(260));
    assert.equal(tok.decode(ids), "he</s>");
  });
});

test("huggingface eos comes from --eos-token, then tokenizer_config.json, else an error naming --eos-token", async () => {
  await withTempDir(async (dir) => {
    const json = tinyTokenizerJson() as { added_tokens: unknown[] };
    json.added_tokens = [{ id: 260, content: "<|im_end|>", special: true }];
    await writeFile(join(dir, "tokenizer.json"), JSON.stringify(json));
    assert.equal((await loadTokenizer(dir)).eosId, 260);
    assert.equal((await loadTokenizer(dir, { eosToken: "hell" })).eosId, 258);
    await assert.rejects(loadTokenizer(dir, { eosToken: "<nope>" }), /--eos-token: "<nope>"/);

    await writeFile(join(dir, "tokenizer_config.json"), JSON.stringify({ eos_token: { content: "he" } }));
    assert.equal((await loadTokenizer(dir)).eosId, 256);

    await rm(join(dir, "tokenizer_config.json"));
    json.added_tokens = [];
    await writeFile(join(dir, "tokenizer.json"), JSON.stringify(json));
    await assert.rejects(loadTokenizer(dir), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.match(err.message, /--eos-token/);
      return true;
    });
  });
});

test("loadTokenizer names the path when it is missing, lacks tokenizer.json, or is not JSON", async () => {
  await withTempDir(async (dir) => {
    const missing = join(dir, "nope");
    await assert.rejects(loadTokenizer(missing), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.equal(
        err.message,
        `--tokenizer: ${missing}: no such file (give byte, gpt2, or a tokenizer.json or the directory holding it)`,
      );
      return true;
    });

    const empty = join(dir, "empty");
    await mkdir(empty);
    await assert.rejects(loadTokenizer(empty), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.ok(err.message.includes(empty), err.message);
      assert.match(err.message, /tokenizer\.json/);
      return true;
    });

    const broken = join(dir, "broken.json");
    await writeFile(broken, "{ not json");
    await assert.rejects(loadTokenizer(broken), (err: unknown) => {
      assert.ok(err instanceof UserError);
      assert.ok(err.message.includes(broken), err.message);
      return true;
    });
  });
});
