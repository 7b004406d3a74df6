/**
 * The access log: one JSON line per request, in the operational log's format and on its
 * destination (so lines of both stay in order), built by concatenating its fixed keys rather
 * than by pino's per-key walk. Profiling put pino's serialisation and its ISO timestamp at about
 * 9% of a small request's CPU; a `JSON.stringify` of the record still cost 2-3 µs a line, this
 * about 1 µs (strings that need escaping still go through JSON.stringify).
 *
 * The line is what pino wrote: `{"level":"info","time":ISO,...fields,"msg":"access"}`, with
 * undefined fields left out. The request path's report (request/report.ts) fills the fields; they
 * never hold a header value, so nothing needs redacting.
 */
/** What decides whether access lines are written: the operational logger's level (pino's Logger is one). */
export interface LevelSource {
  isLevelEnabled(level: string): boolean;
}

/** One access-log line's fields (docs/operations.md, "Access log"), in the order they are written. */
export interface AccessRecord {
  direction: string;
  method: string | undefined;
  path: string;
  host: string | undefined;
  status: number;
  duration_ms: number;
  bytes_in: number;
  bytes_out: number;
  route: string;
  cluster: string;
  upstream: string | null;
  attempts: number;
  request_id: string | null;
  trace_id: string | null;
  /** CONNECT and WebSocket tunnels: which kind */
  tunnel?: string | undefined;
  /** set where the proxy made the response */
  error: string | undefined;
}

/** Where lines go: pino's destination (SonicBoom) or any stream taking strings. */
export interface LineSink {
  write(line: string): unknown;
}

export class AccessLog {
  constructor(
    /** the operational logger whose level decides whether access lines are written */
    private readonly levels: LevelSource,
    private readonly sink: LineSink,
  ) {}

  write(r: AccessRecord): void {
    if (!this.levels.isLevelEnabled('info')) return;
    let line = '{"level":"info","time":"' + isoNow() + '","direction":' + str(r.direction);
    if (r.method !== undefined) line += ',"method":' + str(r.method);
    line += ',"path":' + str(r.path);
    if (r.host !== undefined) line += ',"host":' + str(r.host);
    line +=
      ',"status":' +
      r.status +
      ',"duration_ms":' +
      r.duration_ms +
      ',"bytes_in":' +
      r.bytes_in +
      ',"bytes_out":' +
      r.bytes_out +
      ',"route":' +
      str(r.route) +
      ',"cluster":' +
      str(r.cluster) +
      ',"upstream":' +
      strOrNull(r.upstream) +
      ',"attempts":' +
      r.attempts +
      ',"request_id":' +
      strOrNull(r.request_id) +
      ',"trace_id":' +
      strOrNull(r.trace_id);
    if (r.tunnel !== undefined) line += ',"tunnel":' + str(r.tunnel);
    if (r.error !== undefined) line += ',"error":' + str(r.error);
    this.sink.write(line + ',"msg":"access"}\n');
  }
}

/** Printable ASCII other than `"` and `\`: a JSON string as it stands. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** A JSON string literal: quoted as is when plain (the usual case), else by JSON.stringify. */
function str(s: string): string {
  return PLAIN.test(s) ? '"' + s + '"' : JSON.stringify(s);
}

function strOrNull(s: string | null): string {
  return s === null ? 'null' : str(s);
}

let cachedSecond = -1;
let cachedPrefix = '';

/** `new Date().toISOString()`, with the part up to the seconds made once per second. */
export function isoNow(now = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 20); // "YYYY-MM-DDTHH:MM:SS."
  }
  const ms = now - second * 1000;
  return cachedPrefix + (ms < 10 ? '00' : ms < 100 ? '0' : '') + ms + 'Z';
}
