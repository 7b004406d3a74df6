/**
 * Config fixtures: the YAML the integration tests hand to `startProxy`, built from the parts a test
 * is about instead of a hand-written preamble each time. Every listener is on 127.0.0.1:0 unless
 * the test says otherwise; the admin listener is always there.
 *
 *   config({ inbound: app.port })                                   // admin + inbound to the app
 *   config(service('o', up.port, { maxPending: 1 }))                // admin + outbound, Host o -> cluster o
 *   config({ inbound: app.port }, service('svc', svc.port), { drain: { delay: '0s' } })
 *
 * Several parts merge: routes are concatenated in order, clusters and the other sections are
 * merged key by key (a later part wins). Tests whose YAML text itself is under test (positions,
 * reload of hand-edited files) keep writing it by hand.
 */
import { stringify } from 'yaml';

export type Fields = Record<string, unknown>;
/** a port on 127.0.0.1, or a whole `host:port` address */
export type Endpoint = number | string;

export interface ConfigParts {
  /** admin fields; `listen` defaults to 127.0.0.1:0 */
  admin?: Fields;
  /** the inbound listener: the app's port, or its fields (`listen` defaults to 127.0.0.1:0; `app` may be a port) */
  inbound?: Endpoint | Fields;
  /** the outbound listener's fields other than `routes` (`listen` defaults to 127.0.0.1:0); implied by `routes` */
  outbound?: Fields;
  /** outbound.routes, in order */
  routes?: Fields[];
  clusters?: Record<string, Fields>;
  /** the DNS servers: one port on 127.0.0.1, or the resolver's fields */
  resolver?: number | Fields;
  drain?: Fields;
}

const ANY = '127.0.0.1:0';

/** `127.0.0.1:port` for a port; an address as given. */
export function loopback(e: Endpoint): string {
  return typeof e === 'number' ? `127.0.0.1:${e}` : e;
}

/** A cluster of static endpoints, plus its other fields. */
export function cluster(endpoints: Endpoint | readonly Endpoint[], fields: Fields = {}): Fields {
  const list = typeof endpoints === 'object' ? endpoints : [endpoints];
  return { endpoints: list.map(loopback), ...fields };
}

/** The route `name` for Host `name` to the cluster `name`; `fields` add to it or replace those. */
export function route(name: string, fields: Fields = {}): Fields {
  return { name, match: { host: name }, cluster: name, ...fields };
}

/** A Host-routed service: `route(name, routeFields)` to a cluster `name` of `endpoints`. */
export function service(
  name: string,
  endpoints: Endpoint | readonly Endpoint[],
  clusterFields: Fields = {},
  routeFields: Fields = {},
): ConfigParts {
  return { routes: [route(name, routeFields)], clusters: { [name]: cluster(endpoints, clusterFields) } };
}

/** The config text for `parts`, merged in order. */
export function config(...parts: ConfigParts[]): string {
  const p: ConfigParts = {};
  for (const part of parts) {
    for (const [k, v] of Object.entries(part) as [keyof ConfigParts, unknown][]) {
      if (v === undefined) continue;
      const had = p[k];
      if (k === 'routes') p.routes = [...(p.routes ?? []), ...(v as Fields[])];
      else if (isFields(had) && isFields(v)) (p as Fields)[k] = { ...had, ...v };
      else (p as Fields)[k] = v;
    }
  }
  const doc: Fields = { admin: { listen: ANY, ...p.admin } };
  if (p.inbound !== undefined) {
    const fields = isFields(p.inbound) ? p.inbound : { app: p.inbound };
    const app = fields['app'];
    doc['inbound'] = { listen: ANY, ...fields, ...(app === undefined ? {} : { app: loopback(app as Endpoint) }) };
  }
  if (p.outbound !== undefined || p.routes !== undefined) {
    doc['outbound'] = { listen: ANY, ...p.outbound, ...(p.routes === undefined ? {} : { routes: p.routes }) };
  }
  if (p.clusters !== undefined) doc['clusters'] = p.clusters;
  if (p.resolver !== undefined) doc['resolver'] = isFields(p.resolver) ? p.resolver : { servers: [loopback(p.resolver)] };
  if (p.drain !== undefined) doc['drain'] = p.drain;
  // the same object used twice (one `limits` for both listeners) is written out twice, not as an alias
  return stringify(doc, { aliasDuplicateObjects: false });
}

function isFields(v: unknown): v is Fields {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
