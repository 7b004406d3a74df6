/**
 * nginx as a peer: writes a one-worker reverse-proxy config (keep-alive to the upstream,
 * streaming both ways, access log to a file as nginx ships by default) into a private prefix.
 * Run with `nginx -p DIR -c nginx.conf`; `master_process off` keeps it one process, so its
 * /proc RSS is the whole proxy.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/** Writes DIR/nginx.conf and the temp folders it names; returns the config path. */
export function writeNginxConf(dir: string, listenPort: number, upstreamPort: number): string {
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'logs']) mkdirSync(path.join(dir, sub), { recursive: true });
  const conf = `
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid ${path.join(dir, 'nginx.pid')};
error_log stderr warn;
events { worker_connections 8192; }
http {
  access_log ${path.join(dir, 'logs', 'access.log')};
  client_body_temp_path ${path.join(dir, 'client_body')};
  proxy_temp_path ${path.join(dir, 'proxy')};
  fastcgi_temp_path ${path.join(dir, 'fastcgi')};
  uwsgi_temp_path ${path.join(dir, 'uwsgi')};
  scgi_temp_path ${path.join(dir, 'scgi')};
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  tcp_nodelay on;
  client_max_body_size 0;
  upstream app {
    server 127.0.0.1:${upstreamPort};
    keepalive 128;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${listenPort};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      # stream like the others instead of spooling bodies to temp files
      proxy_buffering off;
      proxy_request_buffering off;
      # unbuffered, nginx reads the upstream this much at a time (default 4k/8k pages)
      proxy_buffer_size 64k;
      proxy_buffers 4 64k;
      proxy_busy_buffers_size 128k;
    }
  }
}
`;
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  return file;
}
