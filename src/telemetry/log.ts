/**
 * pino loggers. The access log and the operational log share one asynchronous stdout
 * destination so that logging never blocks the event loop; disabled levels cost nothing.
 */
import pino from 'pino';
import { AccessLog } from './access.js';

export type Logger = pino.Logger;

/** Header and key paths that never reach a log line. */
const REDACT = [
  'headers.authorization',
  'headers["proxy-authorization"]',
  'headers.cookie',
  'headers["set-cookie"]',
  // the same one level down (`{ req: { headers } }`, `{ res: { headers } }`)
  '*.headers.authorization',
  '*.headers["proxy-authorization"]',
  '*.headers.cookie',
  '*.headers["set-cookie"]',
  // PEM contents, should a TLS options object ever be logged
  'key',
  'cert',
  'passphrase',
  'tls.key',
  'tls.passphrase',
];

export interface Loggers {
  /** operational log: redacts secret headers and key material wherever they appear */
  readonly log: Logger;
  /** The access log: same destination, format and level, its own serialiser (access.ts). */
  readonly access: AccessLog;
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
  const log = pino({ ...opts, redact: { paths: REDACT, censor: '[redacted]' } }, dest);
  return { log, access: new AccessLog(log, dest) };
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
