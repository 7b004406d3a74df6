/**
 * pino loggers. The access log and the operational log go to stdout through asynchronous
 * destinations, so logging never blocks the event loop; disabled levels cost nothing. Operational
 * lines are written at once, access lines in batches (below). A destination given by the caller
 * (tests) takes both, unbatched and in order.
 */
import pino from 'pino';
import { AccessLog, type LineSink as AccessSink } from './access.js';
import { LOG_REDACT_PATHS, REDACTED } from '../security/redact.js';

export type Logger = pino.Logger;

export interface Loggers {
  /** operational log: redacts secret headers and key material wherever they appear */
  readonly log: Logger;
  /** The access log: same format and level, its own serialiser (access.ts), batched writes. */
  readonly access: AccessLog;
}

/**
 * Access lines on stdout are written in batches, as Envoy's file access log does (its
 * `file_flush_interval_msec` defaults to 1 s): one write per 16 KiB of lines or per second,
 * whichever comes first, instead of one write per request. Each write is a syscall on libuv's
 * thread pool, which shares the proxy's core: unbatched, the access log cost about a fifth of a
 * small request's CPU (`npm run bench:ab`). pino flushes what is left at exit.
 */
const ACCESS_BATCH_BYTES = 16 * 1024;
const ACCESS_FLUSH_MS = 1000;

function batchedStdout(): AccessSink {
  const dest = pino.destination({ dest: 1, sync: false, minLength: ACCESS_BATCH_BYTES, maxWrite: 4 * ACCESS_BATCH_BYTES });
  let written = false;
  setInterval(() => {
    if (!written) return;
    written = false;
    try {
      dest.flush();
    } catch {
      // the destination closed (exit): nothing left to do
    }
  }, ACCESS_FLUSH_MS).unref();
  return {
    write(line: string): void {
      written = true;
      dest.write(line);
    },
  };
}

export function createLoggers(level: string, destination?: pino.DestinationStream): Loggers {
  const dest = destination ?? pino.destination({ dest: 1, sync: false });
  const opts: pino.LoggerOptions = {
    level,
    base: null,
    messageKey: 'msg',
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  };
  const log = pino({ ...opts, redact: { paths: [...LOG_REDACT_PATHS], censor: REDACTED } }, dest);
  return { log, access: new AccessLog(log, destination ?? batchedStdout()) };
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return createLoggers(level, destination).log;
}

/** Flushes an asynchronous destination before exit. */
export function flushLogger(log: Logger): void {
  try {
    log.flush();
  } catch {
    // a destination that cannot flush (already closed) is nothing to fail over
  }
}
