// A tiny authoritative DNS server over UDP for tests: answers A and AAAA from a mutable table,
// NXDOMAIN for unknown names, and can be switched to SERVFAIL or to not answering at all.
// Hand-written wire format (RFC 1035 §4): enough for node:dns (c-ares) queries.
import dgram from 'node:dgram';
import net from 'node:net';

export type FailMode = 'servfail' | 'drop';

export interface DnsServer {
  readonly port: number;
  /** Sets the records of `name` (case-insensitive, no trailing dot). */
  set(name: string, a: string[], aaaa?: string[]): void;
  /** Forgets `name` (NXDOMAIN from now on). */
  delete(name: string): void;
  /** While on, every query gets SERVFAIL (or, with 'drop', no answer at all). */
  fail(on: boolean, mode?: FailMode): void;
  /** queries received so far */
  readonly queries: number;
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_AAAA = 28;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

function ipv6Bytes(ip: string): Buffer {
  if (net.isIPv6(ip) === false) throw new Error(`not IPv6: ${ip}`);
  let text = ip;
  const tail: number[] = [];
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4 !== null) {
    const o = v4[1]!.split('.').map(Number);
    tail.push((o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!);
    text = text.slice(0, -v4[1]!.length);
    if (text.endsWith(':') && !text.endsWith('::')) text = text.slice(0, -1);
  }
  const [head, rest] = text.split('::') as [string, string | undefined];
  const parse = (s: string | undefined): number[] => (s === undefined || s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const h = parse(head);
  const r = [...parse(rest), ...tail];
  const groups =
    rest === undefined && text.indexOf('::') < 0 ? [...h, ...tail] : [...h, ...new Array<number>(8 - h.length - r.length).fill(0), ...r];
  const buf = Buffer.alloc(16);
  groups.forEach((g, i) => buf.writeUInt16BE(g, i * 2));
  return buf;
}

/** Reads the question's name; returns it lower-cased and the offset after QNAME. */
function readName(msg: Buffer, offset: number): [string, number] {
  const labels: string[] = [];
  for (;;) {
    const len = msg[offset];
    if (len === undefined) throw new Error('truncated name');
    offset++;
    if (len === 0) break;
    labels.push(msg.toString('latin1', offset, offset + len));
    offset += len;
  }
  return [labels.join('.').toLowerCase(), offset];
}

export async function startDnsServer(): Promise<DnsServer> {
  const records = new Map<string, { a: string[]; aaaa: string[] }>();
  let failing: FailMode | null = null;
  let queries = 0;
  const sock = dgram.createSocket('udp4');

  sock.on('message', (msg, rinfo) => {
    queries++;
    if (failing === 'drop' || msg.length < 12) return;
    let name: string;
    let qEnd: number;
    try {
      [name, qEnd] = readName(msg, 12);
    } catch {
      return;
    }
    const qtype = msg.readUInt16BE(qEnd);
    const question = msg.subarray(12, qEnd + 4); // QNAME + QTYPE + QCLASS, echoed as asked
    const rd = msg[2]! & 0x01;
    let rcode = 0;
    const answers: Buffer[] = [];
    const entry = records.get(name);
    if (failing === 'servfail') rcode = RCODE_SERVFAIL;
    else if (entry === undefined) rcode = RCODE_NXDOMAIN;
    else {
      const list = qtype === TYPE_A ? entry.a : qtype === TYPE_AAAA ? entry.aaaa : [];
      for (const ip of list) {
        const rdata = qtype === TYPE_A ? Buffer.from(ip.split('.').map(Number)) : ipv6Bytes(ip);
        const rr = Buffer.alloc(12);
        rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
        rr.writeUInt16BE(qtype, 2);
        rr.writeUInt16BE(1, 4); // class IN
        rr.writeUInt32BE(5, 6); // TTL
        rr.writeUInt16BE(rdata.length, 10);
        answers.push(rr, rdata);
      }
    }
    const header = Buffer.alloc(12);
    msg.copy(header, 0, 0, 2); // ID
    header[2] = 0x80 | 0x04 | rd; // QR, AA, RD echoed
    header[3] = 0x80 | rcode; // RA, RCODE
    header.writeUInt16BE(1, 4); // QDCOUNT
    header.writeUInt16BE(answers.length / 2, 6); // ANCOUNT
    sock.send(Buffer.concat([header, question, ...answers]), rinfo.port, rinfo.address);
  });

  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      sock.off('error', reject);
      resolve();
    });
  });

  return {
    port: sock.address().port,
    set(name, a, aaaa = []) {
      records.set(name.toLowerCase(), { a: a.slice(), aaaa: aaaa.slice() });
    },
    delete(name) {
      records.delete(name.toLowerCase());
    },
    fail(on, mode = 'servfail') {
      failing = on ? mode : null;
    },
    get queries() {
      return queries;
    },
    close() {
      return new Promise<void>((resolve) => sock.close(() => resolve()));
    },
  };
}
