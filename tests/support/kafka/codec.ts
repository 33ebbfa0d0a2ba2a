/**
 * The Kafka protocol's primitive types (https://kafka.apache.org/protocol#protocol_types), for
 * the non-flexible request and response versions the test broker speaks.
 */

export class ProtocolError extends Error {}

/** Reads primitives from one request body; reading past the end throws ProtocolError. */
export class Reader {
  #view: DataView;
  #at = 0;

  readonly bytes: Uint8Array;
  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.bytes.length - this.#at;
  }

  #take(n: number): number {
    if (n < 0 || this.#at + n > this.bytes.length) throw new ProtocolError("request is truncated");
    const at = this.#at;
    this.#at += n;
    return at;
  }

  int8(): number {
    return this.#view.getInt8(this.#take(1));
  }
  int16(): number {
    return this.#view.getInt16(this.#take(2));
  }
  int32(): number {
    return this.#view.getInt32(this.#take(4));
  }
  int64(): number {
    return Number(this.#view.getBigInt64(this.#take(8)));
  }
  boolean(): boolean {
    return this.int8() !== 0;
  }

  nullableString(): string | null {
    const length = this.int16();
    if (length < 0) return null;
    const at = this.#take(length);
    return new TextDecoder().decode(this.bytes.subarray(at, at + length));
  }
  string(): string {
    const value = this.nullableString();
    if (value === null) throw new ProtocolError("null where a string is required");
    return value;
  }

  nullableBytes(): Uint8Array | null {
    const length = this.int32();
    if (length < 0) return null;
    const at = this.#take(length);
    return this.bytes.subarray(at, at + length);
  }
  bytesField(): Uint8Array {
    return this.nullableBytes() ?? new Uint8Array();
  }

  nullableArray<T>(item: (r: Reader) => T): T[] | null {
    const length = this.int32();
    if (length < 0) return null;
    if (length > this.remaining) throw new ProtocolError("array longer than the request");
    return Array.from({ length }, () => item(this));
  }
  array<T>(item: (r: Reader) => T): T[] {
    return this.nullableArray(item) ?? [];
  }
}

/** Builds a response body. */
export class Writer {
  #chunks: Uint8Array[] = [];
  #size = 0;

  #push(bytes: Uint8Array): this {
    this.#chunks.push(bytes);
    this.#size += bytes.length;
    return this;
  }

  #fixed(size: number, set: (view: DataView) => void): this {
    const bytes = new Uint8Array(size);
    set(new DataView(bytes.buffer));
    return this.#push(bytes);
  }

  int8(value: number): this {
    return this.#fixed(1, (v) => v.setInt8(0, value));
  }
  int16(value: number): this {
    return this.#fixed(2, (v) => v.setInt16(0, value));
  }
  int32(value: number): this {
    return this.#fixed(4, (v) => v.setInt32(0, value));
  }
  int64(value: number): this {
    return this.#fixed(8, (v) => v.setBigInt64(0, BigInt(value)));
  }
  boolean(value: boolean): this {
    return this.int8(value ? 1 : 0);
  }

  string(value: string | null): this {
    if (value === null) return this.int16(-1);
    const bytes = new TextEncoder().encode(value);
    return this.int16(bytes.length).#push(bytes);
  }

  bytes(value: Uint8Array | null): this {
    if (value === null) return this.int32(-1);
    return this.int32(value.length).#push(value);
  }

  array<T>(items: T[] | null, item: (w: Writer, value: T) => void): this {
    if (items === null) return this.int32(-1);
    this.int32(items.length);
    for (const value of items) item(this, value);
    return this;
  }

  /** Raw bytes with no length prefix (record sets are written whole). */
  raw(bytes: Uint8Array): this {
    return this.#push(bytes);
  }

  get size(): number {
    return this.#size;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#size);
    let at = 0;
    for (const chunk of this.#chunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    return out;
  }
}
