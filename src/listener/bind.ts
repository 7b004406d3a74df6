/**
 * Binding a server to a configured address and reading back what it got (port 0 binds any free
 * port). Shared by the listeners and the admin server.
 */
import type { Server } from 'node:net';
import type { Address } from '../config/types.js';

export async function listenOn(server: Server, address: Address, exclusive = false): Promise<Address> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address.host, port: address.port, exclusive }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address();
  return a !== null && typeof a === 'object' ? { host: a.address, port: a.port } : address;
}
