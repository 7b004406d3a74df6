/**
 * `host:port` addresses as the config file writes them (`[::1]:port` for IPv6) and back.
 * Ranges that depend on the use (port 0 for listeners only) are checked by the schema.
 */
import { isIPv4, isIPv6 } from 'node:net';
import type { Address } from './types.js';

const HOSTNAME = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?)*$/;
const ALL_NUMERIC = /^[0-9.]+$/;
const PORT = /^[0-9]{1,5}$/;

/** A DNS name (labels of letters, digits, `-`, `_`) or an IPv4 address; not IPv6. */
export function isHostname(host: string): boolean {
  if (host.length === 0 || host.length > 253 || !HOSTNAME.test(host)) return false;
  // `999.1.1.1` matches the name grammar but is a broken IPv4 address, not a name.
  return ALL_NUMERIC.test(host) ? isIPv4(host) : true;
}

/**
 * Parses `host:port` or `[ipv6]:port`. The host is a DNS name, an IPv4 address or a bracketed
 * IPv6 address (returned without brackets); the port is 0..65535 in decimal. Returns null for
 * anything else, including an unbracketed IPv6 address and a missing host or port.
 */
export function parseAddress(s: string): Address | null {
  if (typeof s !== 'string' || s.length > 300) return null;
  let host: string;
  let portText: string;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0 || s.charCodeAt(close + 1) !== 58 /* : */) return null;
    host = s.slice(1, close);
    if (!isIPv6(host)) return null;
    portText = s.slice(close + 2);
  } else {
    const colon = s.lastIndexOf(':');
    if (colon < 0) return null;
    host = s.slice(0, colon);
    if (!isHostname(host)) return null;
    portText = s.slice(colon + 1);
  }
  if (!PORT.test(portText)) return null;
  const port = Number(portText);
  if (port > 65535) return null;
  return { host, port };
}

/** Formats an address as the config file writes it; IPv6 hosts get brackets. */
export function formatAddress(a: Address): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
