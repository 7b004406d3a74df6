// Test PKI: an EC mesh CA, a second unrelated CA, and leaf certificates with SPIFFE URI SANs,
// made with the openssl CLI into a temp dir. Returns file paths, like a config would name them.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);
const OPENSSL = '/usr/bin/openssl';

export interface IssueOptions {
  uris?: string[];
  dns?: string[];
  ips?: string[];
  isCa?: boolean;
  /** which CA signs it; default 'ca' */
  signer?: 'ca' | 'other';
}

export interface Pki {
  /** mesh CA certificate (PEM file path) */
  ca: string;
  caKey: string;
  /** an unrelated CA's certificate */
  otherCa: string;
  issue(name: string, opts: IssueOptions): Promise<{ cert: string; key: string }>;
}

async function makeCa(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  await run(OPENSSL, [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    `/O=outrigger-test/CN=${name}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { cert, key };
}

/** Create the CAs in `dir` (which must exist). */
export async function makePki(dir: string): Promise<Pki> {
  const [ca, other] = await Promise.all([makeCa(dir, 'mesh-ca'), makeCa(dir, 'other-ca')]);
  const issue = async (name: string, opts: IssueOptions): Promise<{ cert: string; key: string }> => {
    if (!/^[A-Za-z0-9_.-]+$/.test(name)) throw new Error(`bad cert name ${name}`);
    const signer = opts.signer === 'other' ? other : ca;
    const key = path.join(dir, `${name}.key`);
    const csr = path.join(dir, `${name}.csr`);
    const cert = path.join(dir, `${name}.crt`);
    const ext = path.join(dir, `${name}.ext`);
    const sans = [
      ...(opts.uris ?? []).map((u) => `URI:${u}`),
      ...(opts.dns ?? []).map((d) => `DNS:${d}`),
      ...(opts.ips ?? []).map((d) => `IP:${d}`),
    ];
    const lines = [
      opts.isCa === true ? 'basicConstraints=critical,CA:TRUE' : 'basicConstraints=critical,CA:FALSE',
      opts.isCa === true ? 'keyUsage=critical,digitalSignature,keyCertSign' : 'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
    ];
    if (sans.length > 0) lines.push(`subjectAltName=${sans.join(',')}`);
    await writeFile(ext, lines.join('\n') + '\n');
    await run(OPENSSL, [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      csr,
      '-subj',
      `/O=outrigger-test/CN=${name}`,
    ]);
    await run(OPENSSL, [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      signer.cert,
      '-CAkey',
      signer.key,
      '-set_serial',
      '0x' + randomBytes(8).toString('hex'),
      '-days',
      '1',
      '-out',
      cert,
      '-extfile',
      ext,
    ]);
    return { cert, key };
  };
  return { ca: ca.cert, caKey: ca.key, otherCa: other.cert, issue };
}
