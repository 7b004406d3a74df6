/**
 * The HTTP/1.1 codec's request side: node:http's IncomingMessage and ServerResponse fitted to the
 * pipeline. The request head is admitted as it stands (IncomingMessage is a `RequestHead`), an
 * admitted request becomes an Exchange writing to the ServerResponse (a `ClientResponse`), and a
 * refusal is answered here, where closing the connection is a matter of this codec.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
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

/**
 * Marks a client connection whose answer so far ends with `Connection: close`: nothing the client
 * sent after that is processed (RFC 9112 9.6), even what was already read and parsed.
 */
const kClosing = Symbol('outrigger.closing');
type Marked = Socket & { [kClosing]?: true };

export function markClosing(socket: Socket): void {
  (socket as Marked)[kClosing] = true;
}

export function isClosing(socket: Socket): boolean {
  return (socket as Marked)[kClosing] === true;
}

/** The server's 'request' event. */
export function serveRequest(p: Pipeline, req: IncomingMessage, res: ServerResponse): void {
  // A pipelined request behind a refusal: Node parsed it and queued its response, which never
  // goes out (the connection closes after the refusal). It is not admitted, counted or forwarded.
  if (isClosing(req.socket)) {
    req.resume();
    return;
  }
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
    markClosing(req.socket);
    req.resume();
    res.on('finish', () => req.socket.destroySoon());
  }
  respondError(res, r.error, r.close);
  p.report.refused(req.method, r);
}
