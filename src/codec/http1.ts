/**
 * The HTTP/1.1 codec's request side: node:http's IncomingMessage and ServerResponse fitted to the
 * pipeline. The request head is admitted as it stands (IncomingMessage is a `RequestHead`), an
 * admitted request becomes an Exchange writing to the ServerResponse (a `ClientResponse`), and a
 * refusal is answered here, where closing the connection is a matter of this codec.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { respondError } from '../errors.js';
import type { Admission } from '../request/admit.js';
import type { Refusal } from '../request/decision.js';
import { Exchange } from '../request/exchange.js';
import type { Report } from '../request/report.js';
import type { Direction } from '../telemetry/metrics.js';

/** A listener's pipeline: its admission and its report. */
export interface Pipeline {
  readonly direction: Direction;
  readonly admission: Admission;
  readonly report: Report;
}

/** Whether the request carries a body to stream (RFC 9112 6.3: Content-Length or Transfer-Encoding). */
function hasBody(req: IncomingMessage): boolean {
  const h = req.headers;
  if (h['transfer-encoding'] !== undefined) return true;
  const cl = h['content-length'];
  return cl !== undefined && cl !== '0';
}

/** The server's 'request' event. */
export function serveRequest(p: Pipeline, req: IncomingMessage, res: ServerResponse): void {
  const a = p.admission.admit(req, req.socket, 'http');
  if (!a.admitted) {
    refuse(p, req, res, a);
    return;
  }
  new Exchange(a, req.method ?? 'GET', hasBody(req) ? req : null, res, p.report, p.direction).start();
}

function refuse(p: Pipeline, req: IncomingMessage, res: ServerResponse, r: Refusal): void {
  if (r.close) {
    // nothing after this request on the connection is read: the body is discarded, then the
    // socket closes once the answer is out
    res.shouldKeepAlive = false;
    req.resume();
    res.on('finish', () => req.socket.destroySoon());
  }
  respondError(res, r.error, r.close);
  p.report.refused(req.method, r);
}
