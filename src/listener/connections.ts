/**
 * Connection tracking and graceful drain for one node:http / node:https listener.
 *
 * Owns: the set of open client sockets, which of them have a request in flight, tunnel sockets
 * (upgrade / CONNECT) that Node's HTTP server stops tracking, the connection cap, and the drain
 * sequence (docs/operations.md, "Drain": `drain.timeout`, "without dropping a request or a connection").
 *
 * Drain, in order:
 * 1. `server.close()`: the listening socket goes away, so new connections are refused by the
 *    kernel (ECONNREFUSED) rather than accepted and reset.
 * 2. Every response whose head is not yet written gets `shouldKeepAlive = false`: Node then writes
 *    `Connection: close` and ends the socket after that response. Responses that start later
 *    (pipelined requests, a first request on a connection accepted before the close) get the
 *    same from the `request` hook, which is prepended so it runs before the proxy's handler can
 *    write a head.
 * 3. Idle keep-alive sockets are closed now (`server.closeIdleConnections()`).
 * 4. A socket whose last in-flight response finishes is ended then — this catches responses whose
 *    head was already sent with `keep-alive` before the drain began.
 * 5. Resolve when nothing is open; at the deadline destroy what is left (tunnels included) and
 *    resolve.
 *
 * Before the drain (during `drain.delay`), {@link ConnectionTracker.closeConnectionsAfterResponse}
 * moves keep-alive clients off one response at a time while still accepting; and hot reload uses
 * {@link ConnectionTracker.settled} to learn when the requests of an old snapshot are done.
 *
 * A connection accepted before the drain that has not sent a request yet is *not* closed at once:
 * Node does not count it as idle, and the client most likely connected to send one. It gets its
 * one response with `Connection: close`, or is cut at the deadline.
 */
import type http from 'node:http';
import type https from 'node:https';
import type net from 'node:net';
import type { Duplex } from 'node:stream';

/** Options of {@link ConnectionTracker}. */
export interface ConnectionTrackerOptions {
  /** Cap on open client sockets (0 or absent: no cap). Sockets over it are closed at accept. */
  maxConnections?: number;
}

/** Either kind of listener server; both have the HTTP server surface this module uses. */
export type TrackedServer = http.Server | https.Server;

/** Where a response keeps its tracker, so the per-response listener is one shared function. */
const kTracker = Symbol('outrigger.connectionTracker');
type TrackedResponse = http.ServerResponse & { [kTracker]?: ConnectionTracker };

/** 'close' listener of every tracked response (module level: no closure per request). */
function onResponseClose(this: TrackedResponse): void {
  this[kTracker]?.release(this);
}

/**
 * Tracks the client connections of one server and drains them gracefully.
 *
 * Construct it right after creating the server (before `listen`), so it sees every connection.
 */
export class ConnectionTracker {
  private readonly server: http.Server;
  /** Client sockets as accepted ('connection': the TCP socket, also for TLS servers). */
  private readonly sockets = new Set<net.Socket>();
  /** Sockets registered with {@link trackTunnel}. */
  private readonly tunnelSockets = new Set<Duplex>();
  /** Responses from 'request' until their 'close'. */
  private readonly responses = new Set<http.ServerResponse>();
  /**
   * In-flight responses per request socket (the TLSSocket for https). A socket that closes
   * releases what it still holds: Node never closes a pipelined response queued behind a
   * `Connection: close` answer.
   */
  private readonly busy = new Map<net.Socket, Set<http.ServerResponse>>();
  /** What to do once a socket has no response in flight (see {@link afterResponses}). */
  private readonly whenIdle = new Map<net.Socket, () => void>();
  private droppedCount = 0;
  private isDraining = false;
  /** Responses get `Connection: close` while still accepting (the drain delay, inbound). */
  private closeAfterResponse = false;
  /** Barriers of {@link settled}: responses still awaited, and the resolver. */
  private barriers: { pending: Set<http.ServerResponse>; resolve: () => void }[] = [];
  private drained: Promise<void> | null = null;
  private resolveDrained: (() => void) | null = null;
  private deadline: NodeJS.Timeout | null = null;

  constructor(server: TrackedServer, opts: ConnectionTrackerOptions = {}) {
    // https.Server has the same HTTP surface; one static type keeps the overloads simple.
    this.server = server as http.Server;
    this.setMaxConnections(opts.maxConnections ?? 0);
    // Prepended: during a drain the flag must be set before any handler can write the head.
    this.server.prependListener('request', this.onRequest);
    this.server.on('connection', this.onConnection);
    this.server.on('drop', this.onDrop);
  }

  /** Open client sockets (including upgraded ones and TLS sockets still handshaking). */
  get size(): number {
    return this.sockets.size;
  }

  /** Requests whose response has not finished or closed yet. */
  get inFlight(): number {
    return this.responses.size;
  }

  /** Open sockets registered with {@link trackTunnel}. */
  get tunnels(): number {
    return this.tunnelSockets.size;
  }

  /** Connections refused because {@link size} was at the cap (since construction). */
  get dropped(): number {
    return this.droppedCount;
  }

  /** True from the first {@link drain} call on. */
  get draining(): boolean {
    return this.isDraining;
  }

  /**
   * Cap open client sockets; 0 means no cap. Uses Node's `server.maxConnections`, which closes an
   * excess connection at accept before any JS socket exists (cheapest, and nothing is half-read);
   * each one is counted in {@link dropped}. Takes effect for new connections only.
   */
  setMaxConnections(max: number): void {
    // Node treats an unset maxConnections as "no cap"; Infinity behaves the same and is a number.
    this.server.maxConnections = max > 0 ? max : Infinity;
  }

  /** Visit every open client socket. */
  forEach(fn: (socket: net.Socket) => void): void {
    for (const s of this.sockets) fn(s);
  }

  /**
   * From now on, every response that has not written its head yet — and every later one — says
   * `Connection: close`, and its socket closes after it, while the listener keeps accepting. This
   * is Envoy's graceful drain during `drain.delay`: keep-alive clients are moved off this
   * instance one response at a time (each reconnects, through the Service, to a pod that is still
   * ready) instead of all being cut when the listener finally closes. Idle sockets are left alone
   * here: closing one races with a request the client may be sending on it right now.
   */
  closeConnectionsAfterResponse(): void {
    this.closeAfterResponse = true;
    for (const res of this.responses) if (!res.headersSent) res.shouldKeepAlive = false;
  }

  /**
   * Resolves once every request in flight *now* has finished (its response closed or its socket
   * went away); requests that start later are not waited for. Hot reload uses it to close a removed
   * cluster only after the requests that may still use it, under continuous load.
   */
  settled(): Promise<void> {
    if (this.responses.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.barriers.push({ pending: new Set(this.responses), resolve });
    });
  }

  /**
   * Track a socket that left HTTP: the client socket after 'upgrade' / 'connect', and the upstream
   * socket of a tunnel. A drain waits for it to close and destroys it at the deadline. Tracking a
   * socket once the drain has finished destroys it at once.
   */
  trackTunnel(socket: Duplex): void {
    if (socket.destroyed || this.tunnelSockets.has(socket)) return;
    if (this.isDraining && this.resolveDrained === null) {
      socket.destroy();
      return;
    }
    this.tunnelSockets.add(socket);
    socket.once('close', () => {
      this.tunnelSockets.delete(socket);
      this.maybeDrained();
    });
  }

  /**
   * Drain gracefully (see the module header): stop accepting, close idle keep-alive connections,
   * let in-flight requests finish with `Connection: close`, and resolve once every socket has
   * closed — or at `timeoutMs`, after destroying what is left. Calling it again returns the same
   * promise. Never rejects.
   */
  drain(timeoutMs: number): Promise<void> {
    if (this.drained !== null) return this.drained;
    this.isDraining = true;
    this.drained = new Promise<void>((resolve) => {
      this.resolveDrained = resolve;
    });
    for (const res of this.responses) if (!res.headersSent) res.shouldKeepAlive = false;
    // No callback: close() on a server that is not listening would hand it an error, and a
    // drain must work for a listener that failed to bind too.
    this.server.close();
    // Node >= 19 does this inside close(); explicit so the behaviour doesn't hang on that detail.
    this.server.closeIdleConnections();
    this.deadline = setTimeout(() => this.destroyAll(), timeoutMs);
    // The open sockets keep the process alive while they matter; the timer alone must not.
    this.deadline.unref();
    this.maybeDrained();
    return this.drained;
  }

  /**
   * Destroy every tracked socket now (the drain deadline; or a second SIGTERM). Resolves a
   * pending drain. Destroyed sockets leave the counts immediately.
   */
  destroyAll(): void {
    for (const s of this.sockets) s.destroy();
    for (const s of this.tunnelSockets) s.destroy();
    this.sockets.clear();
    this.tunnelSockets.clear();
    this.busy.clear();
    this.maybeDrained();
  }

  /** @internal called by the response 'close' listener. */
  release(res: http.ServerResponse): void {
    if (!this.responses.delete(res)) return;
    if (this.barriers.length > 0) this.releaseBarriers(res);
    const socket = res.req.socket;
    const held = this.busy.get(socket);
    if (held !== undefined) {
      // the set stays until the socket closes: one per connection, not one per request
      held.delete(res);
      if (held.size > 0) return;
    }
    const after = this.whenIdle.get(socket);
    if (after !== undefined) {
      this.whenIdle.delete(socket);
      after();
      return;
    }
    // A response whose head went out as keep-alive before the drain: Node keeps the socket for the
    // next request, so end it here. (For `Connection: close` responses Node already did.)
    if (this.isDraining && !socket.destroyed && !socket.writableEnded) socket.destroySoon();
  }

  /**
   * Runs `fn` once every response in flight on `socket` has gone out (at once when none is):
   * what is said about bytes after a request must follow that request's answer.
   */
  afterResponses(socket: net.Socket, fn: () => void): void {
    if ((this.busy.get(socket)?.size ?? 0) === 0) fn();
    else this.whenIdle.set(socket, fn);
  }

  /** The responses in flight on `socket`, oldest first. */
  responsesOn(socket: net.Socket): ReadonlySet<http.ServerResponse> | undefined {
    return this.busy.get(socket);
  }

  /**
   * The client's FIN. The listener keeps half-open connections (a client that sends its request
   * and shuts down its sending side still gets the answer), but a FIN while an answer is already
   * streaming is a client that left: TCP cannot tell the two apart, so the moment decides, and
   * the exchange aborts instead of holding its upstream until it writes into a dead socket.
   */
  private clientEnded(socket: net.Socket): void {
    const held = this.busy.get(socket);
    if (held === undefined) return;
    for (const res of held) {
      if (res.headersSent) {
        socket.destroy();
        return;
      }
    }
  }

  private releaseSocket(socket: net.Socket): void {
    this.whenIdle.delete(socket);
    const held = this.busy.get(socket);
    if (held === undefined) return;
    for (const res of [...held]) this.release(res);
    this.busy.delete(socket);
  }

  private releaseBarriers(res: http.ServerResponse): void {
    let done = 0;
    for (let i = 0; i < this.barriers.length; i++) {
      const b = this.barriers[i]!;
      if (b.pending.delete(res) && b.pending.size === 0) {
        b.resolve();
        done++;
      }
    }
    if (done > 0) this.barriers = this.barriers.filter((b) => b.pending.size > 0);
  }

  private readonly onRequest = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    this.responses.add(res);
    const socket = req.socket;
    let held = this.busy.get(socket);
    if (held === undefined) {
      this.busy.set(socket, (held = new Set()));
      socket.once('close', () => this.releaseSocket(socket));
      socket.once('end', () => this.clientEnded(socket));
    }
    held.add(res);
    if (this.isDraining || this.closeAfterResponse) res.shouldKeepAlive = false;
    (res as TrackedResponse)[kTracker] = this;
    res.once('close', onResponseClose);
  };

  private readonly onConnection = (socket: net.Socket): void => {
    if (this.isDraining && this.resolveDrained === null) {
      // Accepted in the instant between the deadline and close(): nobody would ever close it.
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.maybeDrained();
    });
  };

  private readonly onDrop = (): void => {
    this.droppedCount++;
  };

  private maybeDrained(): void {
    const resolve = this.resolveDrained;
    if (resolve === null || this.sockets.size > 0 || this.tunnelSockets.size > 0) return;
    this.resolveDrained = null;
    if (this.deadline !== null) clearTimeout(this.deadline);
    this.deadline = null;
    resolve();
  }
}
