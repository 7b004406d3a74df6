/**
 * nginx as the benchmark *upstream* (not as a peer proxy): answers GET /small (13 B) and
 * GET /large (64 KiB, from a file kept open by open_file_cache) on keep-alive connections at a
 * fraction of the Node upstream's CPU per request. The upstream shares the load core with the
 * client, so a cheaper upstream leaves the proxy as the bottleneck of the request-rate scenarios.
 * Bulk transfers and the retry storm use the Node upstream (bench/upstream.ts), which can stream
 * any size, count bytes and count attempts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Writes DIR/nginx-upstream.conf (and DIR/large.bin); returns the config path. */
export function writeNginxUpstreamConf(dir: string, port: number): string {
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(dir, sub), { recursive: true });
  const large = path.join(dir, 'large.bin');
  writeFileSync(large, Buffer.alloc(64 * 1024, 0x62));
  const conf = `
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid ${path.join(dir, 'nginx-upstream.pid')};
error_log stderr warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${path.join(dir, 'client_body')};
  proxy_temp_path ${path.join(dir, 'proxy')};
  fastcgi_temp_path ${path.join(dir, 'fastcgi')};
  uwsgi_temp_path ${path.join(dir, 'uwsgi')};
  scgi_temp_path ${path.join(dir, 'scgi')};
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  tcp_nodelay on;
  sendfile on;
  open_file_cache max=16 inactive=1h;
  server_tokens off;
  server {
    listen 127.0.0.1:${port};
    location = /small { default_type text/plain; return 200 "Hello, World!"; }
    location = /large { default_type application/octet-stream; alias ${large}; etag off; }
  }
}
`;
  const file = path.join(dir, 'nginx-upstream.conf');
  writeFileSync(file, conf);
  return file;
}
