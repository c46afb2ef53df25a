/**
 * Protobuf fields written by hand into one growable buffer: the Measurement encoder (measurement-wire.ts)
 * and WatchPower's per-stream fields (power-stream.ts) run on every EndWindow and every sample, where a
 * general writer's per-field allocations show. Tags are passed pre-computed ((field << 3) | wire type).
 */
const MAX_UINT32 = 0xffffffff;

/** A growable output buffer of protobuf fields (the encoders reuse one and copy out what they wrote). */
export class WireWriter {
  buf: Buffer;
  pos = 0;

  constructor(capacity = 4096) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  /** A non-negative integer up to 2^53 as a varint (tags, lengths, uint32, non-negative int32/int64). */
  varint(v: number): void {
    this.ensure(10);
    const buf = this.buf;
    let pos = this.pos;
    while (v > 0x7f) {
      buf[pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    buf[pos++] = v;
    this.pos = pos;
  }

  /** uint32, validated as the generated encoder does (it throws on anything else). */
  uint32(v: number | string): void {
    const n = typeof v === "string" ? Number(v) : v;
    if (!Number.isInteger(n) || n < 0 || n > MAX_UINT32) throw new Error(`invalid uint32: ${v}`);
    this.varint(n);
  }

  /** int32 (enums): negative values are sign-extended to 10 bytes, as protobuf requires. */
  int32(v: number): void {
    if (!Number.isInteger(v) || v > 0x7fffffff || v < -0x80000000) throw new Error(`invalid int32: ${v}`);
    if (v >= 0) return this.varint(v);
    this.ensure(10);
    for (let i = 0; i < 9; i++) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v >>= 7;
    }
    this.buf[this.pos++] = 1;
  }

  double(v: number): void {
    this.ensure(8);
    this.pos = this.buf.writeDoubleLE(v, this.pos);
  }

  bool(v: boolean): void {
    this.ensure(1);
    this.buf[this.pos++] = v ? 1 : 0;
  }

  string(s: string): void {
    const n = s.length;
    this.ensure(n * 3 + 5);
    const buf = this.buf;
    // ASCII (keys, UUIDs, reasons) without an encoder call: one length byte under 128 characters.
    if (n < 0x80) {
      let pos = this.pos + 1;
      let i = 0;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c > 0x7f) break;
        buf[pos++] = c;
      }
      if (i === n) {
        buf[this.pos] = n;
        this.pos = pos;
        return;
      }
    }
    this.varint(Buffer.byteLength(s, "utf8"));
    this.pos += this.buf.write(s, this.pos, "utf8");
  }

  // Fields as ts-proto writes them: a proto3 default (0, "", false) is left out.
  stringField(tag: number, s: string): void {
    if (s === "") return;
    this.varint(tag);
    this.string(s);
  }

  doubleField(tag: number, v: number): void {
    if (v === 0) return;
    this.varint(tag);
    this.double(v);
  }

  int32Field(tag: number, v: number): void {
    if (v === 0) return;
    this.varint(tag);
    this.int32(v);
  }

  /** A uint64 field holding a count below 2^53 (0 is left out, as proto3 does). */
  countField(tag: number, v: number): void {
    if (v === 0) return;
    this.varint(tag);
    this.varint(v);
  }

  uint32Field(tag: number, v: number): void {
    if (v === 0) return;
    this.varint(tag);
    this.uint32(v);
  }

  boolField(tag: number, v: boolean): void {
    if (v === false) return;
    this.varint(tag);
    this.bool(v);
  }

  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  /** Starts a length-delimited field: one byte reserved for its length (most are shorter than 128). */
  open(): number {
    this.ensure(1);
    return this.pos++;
  }

  /** Ends the field started at `start`: writes its length, moving the payload if it needs more bytes. */
  close(start: number): void {
    const len = this.pos - start - 1;
    if (len < 0x80) {
      this.buf[start] = len;
      return;
    }
    let size = 1;
    for (let v = len; v > 0x7f; v = Math.floor(v / 0x80)) size++;
    this.ensure(size - 1);
    this.buf.copyWithin(start + size, start + 1, this.pos);
    this.pos = start;
    this.varint(len);
    this.pos += len;
  }

  /** One map<uint32, double> entry: ts-proto writes the key even when it is 0, and omits value 0. */
  doubleMapEntry(tag: number, key: number | string, value: number): void {
    this.varint(tag);
    const start = this.open();
    this.varint(8);
    this.uint32(key);
    this.doubleField(17, value);
    this.close(start);
  }

  /** What was written so far (a view of the buffer, not a copy). */
  written(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}
