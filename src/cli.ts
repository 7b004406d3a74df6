#!/usr/bin/env node
/**
 * The command line (docs/operations.md, "Command line"): `run` (default), `validate`, `inject`.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { formatProblem, loadConfigFile } from './config/load.js';
import { ConfigError, Proxy } from './proxy.js';
import { INJECT_USAGE, InjectError, injectDetailed, parseInjectArgs } from './inject/index.js';

const DEFAULT_CONFIG = '/etc/outrigger/outrigger.yaml';

const USAGE = `usage:
  outrigger [run] [--config FILE] [--log-level LEVEL]   start the proxy
  outrigger validate FILE                                check a config file
  outrigger inject [FILE|-] [options]                    add the sidecar to Kubernetes YAML
  outrigger --version

Config path: --config, else $OUTRIGGER_CONFIG, else ${DEFAULT_CONFIG}.
Log level: --log-level, else $LOG_LEVEL, else info (pino levels: trace debug info warn error fatal silent).
`;

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

async function validate(args: string[]): Promise<number> {
  if (args.length !== 1 || args[0] === undefined) {
    process.stderr.write('usage: outrigger validate FILE\n');
    return 2;
  }
  const file = args[0];
  const r = await loadConfigFile(file);
  if (r.ok) {
    process.stdout.write(`${file}: ok\n`);
    return 0;
  }
  for (const p of r.problems) process.stdout.write(formatProblem(p) + '\n');
  return 1;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function runInject(args: string[]): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(INJECT_USAGE);
    return 0;
  }
  const parsed = parseInjectArgs(args);
  if ('error' in parsed) {
    process.stderr.write(`outrigger inject: ${parsed.error}\n${INJECT_USAGE}`);
    return 2;
  }
  let text: string;
  try {
    text = parsed.file === null || parsed.file === '-' ? await readStdin() : readFileSync(parsed.file, 'utf8');
  } catch (err) {
    process.stderr.write(`outrigger inject: ${(err as Error).message}\n`);
    return 1;
  }
  try {
    const r = injectDetailed(text, parsed.opts);
    process.stdout.write(r.output);
    for (const s of r.skipped) process.stderr.write(`outrigger inject: skipped ${s.workload}: ${s.reason}\n`);
    for (const w of r.warnings) process.stderr.write(`outrigger inject: warning: ${w}\n`);
    return 0;
  } catch (err) {
    const where = parsed.file === null || parsed.file === '-' ? '<stdin>' : parsed.file;
    if (err instanceof InjectError) process.stderr.write(`${where}:${err.line}:${err.col}: ${err.reason}\n`);
    else process.stderr.write(`outrigger inject: ${(err as Error).message}\n`);
    return 1;
  }
}

async function run(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: { config: { type: 'string', short: 'c' }, 'log-level': { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`outrigger: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const configFile = values.config ?? process.env['OUTRIGGER_CONFIG'] ?? DEFAULT_CONFIG;
  const logLevel = values['log-level'] ?? process.env['LOG_LEVEL'] ?? 'info';
  // Signal handlers go in before anything starts: a SIGTERM while we load and bind (a pod deleted
  // during startup) would otherwise kill the process with the default action, with no drain.
  let proxy: Proxy | null = null;
  let pendingStop: string | null = null;
  let signals = 0;
  const onStop = (sig: string): void => {
    signals++;
    if (signals > 1) {
      proxy?.log.warn({ signal: sig }, 'second signal: exiting now');
      proxy?.log.flush();
      process.exit(0);
    }
    if (proxy === null) pendingStop = sig;
    else proxy.shutdown(sig);
  };
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  // The watcher may already have seen the change SIGHUP announces: hangup() never reloads twice.
  // Before the proxy exists there is nothing to reload: the first load reads the file anyway.
  process.on('SIGHUP', () => void proxy?.hangup());
  let started: Proxy;
  try {
    started = await Proxy.start({ configFile, logLevel });
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`outrigger: invalid config\n${err.message}\n`);
    } else {
      process.stderr.write(`outrigger: cannot start: ${(err as Error).message}\n`);
    }
    return 1;
  }
  proxy = started;
  if (pendingStop !== null) started.shutdown(pendingStop);
  // A bug must not take every connection of the pod down with it: log it loudly and keep serving.
  process.on('uncaughtException', (err) => {
    started.log.error({ err }, 'uncaught exception');
  });
  process.on('unhandledRejection', (err) => {
    started.log.error({ err }, 'unhandled rejection');
  });
  await started.closed;
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case 'validate':
      return validate(rest);
    case 'inject':
      return runInject(rest);
    case 'run':
      return run(rest);
    case '--version':
    case 'version':
      process.stdout.write(`outrigger ${version()}\n`);
      return 0;
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return 0;
    default:
      if (cmd === undefined || cmd.startsWith('-')) return run(argv);
      process.stderr.write(`outrigger: unknown command "${cmd}"\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Let pino's asynchronous destination flush, then leave even if a handle lingers.
    setTimeout(() => process.exit(code), 200).unref();
  },
  (err: Error) => {
    process.stderr.write(`outrigger: ${err.stack ?? err.message}\n`);
    process.exit(1);
  },
);
