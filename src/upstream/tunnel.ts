/**
 * Upgrade (WebSocket and others) and CONNECT tunnels. (Stub: filled in by the traffic work.)
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Listener } from '../listener/listener.js';

export function handleUpgrade(_l: Listener, _req: IncomingMessage, socket: Socket, _head: Buffer): void {
  socket.end('HTTP/1.1 501 Not Implemented\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
}

export function handleConnect(_l: Listener, _req: IncomingMessage, socket: Socket, _head: Buffer): void {
  socket.end('HTTP/1.1 501 Not Implemented\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
}
