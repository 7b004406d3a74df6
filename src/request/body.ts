/**
 * Request bodies on their way upstream. The client's request stream is read on demand (pull, so
 * the client is back-pressured by the upstream socket), and the first 64 KiB are kept so a retry
 * can replay them. Past 64 KiB the copy is dropped and the request is no longer retryable
 * (docs/resilience.md, "Retries"). A mirror gets a tee that never slows the primary: when the mirror
 * falls behind by more than its bound, the mirror is cut, not the request.
 */
import { Readable } from 'node:stream';

/** Requests whose body streamed past this are not retried. */
export const REPLAY_LIMIT = 64 * 1024;
/** The most a mirror may lag behind the primary before it is dropped. */
export const MIRROR_LAG_LIMIT = 256 * 1024;

export class BodySource {
  /** chunks kept for replay; null once more than REPLAY_LIMIT was read */
  private kept: Buffer[] | null = [];
  private keptBytes = 0;
  /** bytes read from the client so far */
  bytesRead = 0;
  ended = false;
  error: Error | null = null;
  private current: AttemptBody | null = null;
  private mirror: MirrorBody | null = null;

  constructor(private readonly req: Readable) {
    req.on('readable', this.onReadable);
    req.on('end', this.onEnd);
    req.on('error', this.onError);
  }

  /** True while every byte read so far is still held, so a new attempt can start from zero. */
  get replayable(): boolean {
    return this.kept !== null;
  }

  /** A fresh stream for one upstream attempt; the previous attempt's stream is detached. */
  attempt(): AttemptBody {
    if (this.current !== null) this.current.detach();
    const body = new AttemptBody(this);
    this.current = body;
    return body;
  }

  /** A tee for a mirror request (at most one per request). */
  tee(): MirrorBody {
    const m = new MirrorBody();
    this.mirror = m;
    return m;
  }

  /** Called by the live attempt when it wants more bytes. */
  pull(body: AttemptBody): void {
    if (body !== this.current) return;
    this.pump();
  }

  /** For AttemptBody: kept chunk i, or undefined past the end of the kept copy. */
  keptChunk(i: number): Buffer | undefined {
    return this.kept === null ? undefined : this.kept[i];
  }
  keptCount(): number {
    return this.kept === null ? 0 : this.kept.length;
  }

  private pump(): void {
    const body = this.current;
    if (body === null || !body.wanting) return;
    if (!body.caughtUp()) return;
    let chunk: Buffer | null;
    while (body.wanting && (chunk = this.req.read() as Buffer | null) !== null) {
      this.bytesRead += chunk.length;
      if (this.kept !== null) {
        if (this.keptBytes + chunk.length <= REPLAY_LIMIT) {
          this.kept.push(chunk);
          this.keptBytes += chunk.length;
        } else {
          this.kept = null; // too big to replay: stop holding memory for it
        }
      }
      body.skipKept();
      const m = this.mirror;
      if (m !== null && !m.offer(chunk)) this.mirror = null;
      body.deliver(chunk);
    }
    if (this.ended) body.finish();
    else if (this.error !== null) body.destroy(this.error);
  }

  private readonly onReadable = (): void => {
    this.pump();
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    if (this.mirror !== null) this.mirror.offer(null);
    if (this.current !== null && this.current.caughtUp()) this.current.finish();
  };

  private readonly onError = (err: Error): void => {
    this.error = err;
    if (this.mirror !== null) this.mirror.destroy(err);
    if (this.current !== null) this.current.destroy(err);
  };
}

/** One attempt's view of the body: kept chunks first, then live bytes from the client. */
export class AttemptBody extends Readable {
  private replayIndex = 0;
  wanting = false;
  private detached = false;

  constructor(private readonly src: BodySource) {
    super({ highWaterMark: 64 * 1024 });
  }

  override _read(): void {
    if (this.detached) return;
    this.wanting = true;
    // Replay what an earlier attempt already consumed.
    let c: Buffer | undefined;
    while (this.wanting && (c = this.src.keptChunk(this.replayIndex)) !== undefined) {
      this.replayIndex++;
      this.wanting = this.push(c);
    }
    if (!this.wanting) return;
    if (this.src.ended && this.caughtUp()) {
      this.finish();
      return;
    }
    this.src.pull(this);
  }

  caughtUp(): boolean {
    return this.replayIndex >= this.src.keptCount();
  }

  /** The source appended a chunk this attempt is about to receive live. */
  skipKept(): void {
    if (this.replayIndex < this.src.keptCount()) this.replayIndex = this.src.keptCount();
  }

  deliver(chunk: Buffer): void {
    this.wanting = this.push(chunk);
  }

  finish(): void {
    if (!this.detached) {
      this.detached = true;
      this.push(null);
    }
  }

  detach(): void {
    this.detached = true;
    this.wanting = false;
  }
}

/** A bounded, never-blocking copy for the mirror cluster. */
export class MirrorBody extends Readable {
  private dead = false;
  override _read(): void {
    // data is pushed by the source as it arrives
  }
  /** false when the mirror has fallen too far behind and was dropped */
  offer(chunk: Buffer | null): boolean {
    if (this.dead) return false;
    if (chunk !== null && this.readableLength > MIRROR_LAG_LIMIT) {
      this.dead = true;
      this.destroy(new Error('mirror fell behind'));
      return false;
    }
    this.push(chunk);
    return true;
  }
}
