/**
 * haproxy as a peer: a one-thread HTTP-mode config with connection reuse to the upstream and
 * the HTTP log format written to stdout (which the harness sends to a file).
 * Run with `haproxy -db -f FILE` (foreground, one process).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';

/** Writes DIR/haproxy.cfg; returns its path. */
export function writeHaproxyConf(dir: string, listenPort: number, upstreamPort: number): string {
  const conf = `
global
  nbthread 1
  maxconn 8000
  log stdout format raw local0

defaults
  mode http
  log global
  option httplog
  option http-keep-alive
  option forwardfor
  timeout connect 5s
  timeout client 65s
  timeout server 65s
  timeout http-keep-alive 65s
  http-reuse always

frontend fe
  bind 127.0.0.1:${listenPort}
  default_backend app

backend app
  server app1 127.0.0.1:${upstreamPort}
`;
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(file, conf);
  return file;
}
