/**
 * Real outrigger instances for integration tests: a config written to a temp file, the proxy
 * started in-process on port 0 listeners, its log lines captured as parsed JSON.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Proxy } from '../../src/proxy.js';

export interface TestProxy {
  proxy: Proxy;
  file: string;
  dir: string;
  logs: Record<string, unknown>[];
  admin: number;
  inbound: number;
  outbound: number;
  /** access log lines */
  access(): Record<string, unknown>[];
  write(yaml: string): void;
  close(): Promise<void>;
}

export function tempDir(prefix = 'outrigger-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/** Starts a proxy on `yaml` (listen addresses default to 127.0.0.1:0 when omitted by the test). */
export async function startProxy(yaml: string, opts: { watch?: boolean; logLevel?: string } = {}): Promise<TestProxy> {
  const dir = tempDir();
  const file = path.join(dir, 'outrigger.yaml');
  writeFileSync(file, yaml);
  const logs: Record<string, unknown>[] = [];
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) {
        if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      }
      cb();
    },
  });
  const proxy = await Proxy.start({
    configFile: file,
    logLevel: opts.logLevel ?? 'info',
    logDestination: dest,
    watch: opts.watch ?? false,
    defaultMetrics: false,
  });
  const a = proxy.addresses();
  return {
    proxy,
    file,
    dir,
    logs,
    admin: a.admin.port,
    inbound: a.inbound?.port ?? 0,
    outbound: a.outbound?.port ?? 0,
    access: () => logs.filter((l) => l['msg'] === 'access'),
    write: (y: string) => writeFileSync(file, y),
    close: () => proxy.close(),
  };
}
