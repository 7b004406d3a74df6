/**
 * `outrigger inject`: adds the sidecar to every Pod template of a multi-document Kubernetes YAML
 * stream (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, ReplicationController, Job,
 * CronJob, and the items of a `List`). What is added is built in `sidecar.ts`; this module owns
 * the stream: it walks the CST so that every document it does not change is written back
 * byte for byte (comments, quoting, `---` and `...` markers included), and only a changed
 * document is re-serialised through the `yaml` Document API, which keeps its comments.
 *
 * Idempotence: an injected template carries `outrigger.io/injected: "true"`; such a template is
 * left alone, so a second run writes every document back unchanged and its output is
 * byte-identical to the first run's.
 */
import { parseArgs } from 'node:util';
import { Composer, CST, isMap, isScalar, isSeq, LineCounter, Parser, parseAllDocuments, Scalar, YAMLMap, YAMLSeq } from 'yaml';
import type { Document } from 'yaml';
import {
  ANNOTATION_CONFIG_MAP,
  ANNOTATION_INJECT,
  ANNOTATION_INJECTED,
  ANNOTATION_VERSION,
  CONFIG_VOLUME,
  configVolume,
  DEFAULT_INJECT_OPTIONS,
  INIT_NAME,
  initContainer,
  OUTRIGGER_VERSION,
  proxyEnv,
  SIDECAR_NAME,
  sidecarContainer,
} from './sidecar.js';
import type { InjectOptions } from './sidecar.js';

export type { InjectOptions } from './sidecar.js';
export { DEFAULT_INJECT_OPTIONS, OUTRIGGER_VERSION } from './sidecar.js';

/** A problem with the input; `message` reads `LINE:COL: text` (1-based, of the input). */
export class InjectError extends Error {
  constructor(
    readonly line: number,
    readonly col: number,
    readonly reason: string,
  ) {
    super(`${line}:${col}: ${reason}`);
    this.name = 'InjectError';
  }
}

/** A Pod template that was left alone, and why (for the CLI to print on stderr). */
export interface SkippedTemplate {
  /** `Kind/name` */
  readonly workload: string;
  readonly reason: string;
}

export interface InjectResult {
  readonly output: string;
  /** `Kind/name` of every template that received the sidecar */
  readonly injected: readonly string[];
  readonly skipped: readonly SkippedTemplate[];
  /** what the user should know (for the CLI to print on stderr): kept proxy variables, Services that bypass the sidecar */
  readonly warnings: readonly string[];
}

/**
 * Injects the sidecar into every Pod template of `text` and returns the new YAML stream.
 * Throws `InjectError` on invalid YAML or a template that cannot take the sidecar (a container
 * or volume already named like ours, a port clash).
 */
export function inject(text: string, opts: InjectOptions): string {
  return injectDetailed(text, opts).output;
}

/** As `inject`, also saying which templates were injected and which were skipped. */
export function injectDetailed(text: string, opts: InjectOptions): InjectResult {
  const lineCounter = new LineCounter();
  // A first full parse only to report syntax errors with their positions.
  for (const doc of parseAllDocuments(text, { lineCounter, prettyErrors: false })) {
    const err = doc.errors[0];
    if (err !== undefined) {
      const pos = lineCounter.linePos(err.pos[0]);
      throw new InjectError(pos.line, pos.col, `invalid YAML: ${firstLine(err.message)}`);
    }
  }
  const state: WalkState = { opts, lineCounter, injected: [], skipped: [], warnings: [], workloads: [], services: [] };
  let out = '';
  for (const token of new Parser().parse(text)) {
    if (token.type !== 'document') {
      out += CST.stringify(token);
      continue;
    }
    const source = CST.stringify(token);
    const docs = [...new Composer().compose([token])];
    const doc = docs[0];
    if (docs.length !== 1 || doc === undefined || !processDocument(doc, state)) {
      out += source;
      continue;
    }
    out += doc.toString({ lineWidth: 0, indentSeq: !/^( *)[^\s#-][^\n]*:[ \t]*\n\1- /m.test(source) });
  }
  if (!opts.transparent) bypassWarnings(state);
  return { output: out, injected: state.injected, skipped: state.skipped, warnings: state.warnings };
}

interface WalkState {
  readonly opts: InjectOptions;
  readonly lineCounter: LineCounter;
  readonly injected: string[];
  readonly skipped: SkippedTemplate[];
  readonly warnings: string[];
  /** injected templates: where their pods are, their labels, their app containers' ports */
  readonly workloads: WorkloadPorts[];
  readonly services: ServicePorts[];
}

interface WorkloadPorts {
  readonly label: string;
  readonly namespace: string;
  readonly labels: ReadonlyMap<string, string>;
  /** containerPort → port name ('' when unnamed) */
  readonly ports: ReadonlyMap<number, string>;
}

interface ServicePorts {
  readonly label: string;
  readonly namespace: string;
  readonly selector: ReadonlyMap<string, string>;
  /** targetPort values: a number, or a container port name */
  readonly targets: readonly (number | string)[];
}

function stringMap(node: unknown): Map<string, string> {
  const out = new Map<string, string>();
  const m = asMap(node);
  if (m === null) return out;
  for (const item of m.items) {
    const k = str(item.key);
    const v = isScalar(item.value) ? String(item.value.value) : null;
    if (k !== null && v !== null) out.set(k, v);
  }
  return out;
}

/** Remembers a Service's selector and target ports, to check them against the injected pods. */
function recordService(obj: YAMLMap, state: WalkState): void {
  const meta = asMap(obj.get('metadata', true));
  const spec = asMap(obj.get('spec', true));
  const selector = stringMap(spec?.get('selector', true));
  if (spec === null || selector.size === 0) return;
  const targets: (number | string)[] = [];
  const ports = spec.get('ports', true);
  if (isSeq(ports)) {
    for (const item of ports.items) {
      const pm = asMap(item);
      const target = pm?.get('targetPort') ?? pm?.get('port');
      if (typeof target === 'number' || typeof target === 'string') targets.push(target);
    }
  }
  state.services.push({
    label: `Service/${str(meta?.get('name')) ?? '(unnamed)'}`,
    namespace: str(meta?.get('namespace')) ?? 'default',
    selector,
    targets,
  });
}

/**
 * Outside --transparent nothing stops traffic that reaches the app's own port: a Service whose
 * targetPort is an app container port sends the mesh straight past the sidecar. Warn about each.
 */
function bypassWarnings(state: WalkState): void {
  for (const svc of state.services) {
    for (const w of state.workloads) {
      if (w.namespace !== svc.namespace) continue;
      let selected = true;
      for (const [k, v] of svc.selector) if (w.labels.get(k) !== v) selected = false;
      if (!selected) continue;
      for (const t of svc.targets) {
        let port: number | undefined;
        if (typeof t === 'number') port = w.ports.has(t) ? t : undefined;
        else for (const [n, name] of w.ports) if (name === t) port = n;
        if (port === undefined) continue;
        state.warnings.push(
          `${svc.label} targets port ${port} of ${w.label} directly, which bypasses the sidecar: point its targetPort at ${state.opts.inboundPort}, ` +
            'and have the app listen on 127.0.0.1 (or fence it with a NetworkPolicy), or use --transparent',
        );
      }
    }
  }
}

/** Where each workload kind keeps its Pod template, by API group. */
const TEMPLATE_PATHS: Readonly<Record<string, { groups: readonly string[]; path: readonly string[] }>> = {
  Pod: { groups: [''], path: [] },
  ReplicationController: { groups: [''], path: ['spec', 'template'] },
  Deployment: { groups: ['apps', 'extensions'], path: ['spec', 'template'] },
  StatefulSet: { groups: ['apps'], path: ['spec', 'template'] },
  DaemonSet: { groups: ['apps', 'extensions'], path: ['spec', 'template'] },
  ReplicaSet: { groups: ['apps', 'extensions'], path: ['spec', 'template'] },
  Job: { groups: ['batch'], path: ['spec', 'template'] },
  CronJob: { groups: ['batch'], path: ['spec', 'jobTemplate', 'spec', 'template'] },
};

/** Mutates `doc` in place; true when something changed. */
function processDocument(doc: Document, state: WalkState): boolean {
  const root = doc.contents;
  if (!isMap(root)) return false;
  return processObject(doc, root, state);
}

function processObject(doc: Document, obj: YAMLMap, state: WalkState): boolean {
  const kind = str(obj.get('kind'));
  const apiVersion = str(obj.get('apiVersion')) ?? '';
  if (kind === 'List' && apiVersion === 'v1') {
    const items = obj.get('items', true);
    if (!isSeq(items)) return false;
    let changed = false;
    for (let i = 0; i < items.items.length; i++) {
      const item = items.items[i];
      if (isMap(item) && processObject(doc, item, state)) changed = true;
    }
    return changed;
  }
  if (kind === null) return false;
  if (kind === 'Service' && apiVersion === 'v1') {
    recordService(obj, state);
    return false;
  }
  const where = TEMPLATE_PATHS[kind];
  const slash = apiVersion.lastIndexOf('/');
  const group = slash < 0 ? '' : apiVersion.slice(0, slash);
  if (where === undefined || !where.groups.includes(group)) return false;

  const meta = asMap(obj.get('metadata', true));
  const name = str(meta?.get('name')) ?? str(meta?.get('generateName'))?.replace(/-$/, '') ?? null;
  const label = `${kind}/${name ?? '(unnamed)'}`;
  let template: YAMLMap | null = obj;
  for (let i = 0; i < where.path.length && template !== null; i++) {
    template = asMap(template.get(where.path[i], true));
  }
  if (template === null) return false;
  const tmplMeta = asMap(template.get('metadata', true));
  const spec = asMap(template.get('spec', true));
  if (spec === null) return false;
  const annotations = asMap(tmplMeta?.get('annotations', true));
  if (str(annotations?.get(ANNOTATION_INJECTED)) === 'true') return false;
  const workloadAnnotations = asMap(meta?.get('annotations', true));
  if (str(annotations?.get(ANNOTATION_INJECT)) === 'false' || str(workloadAnnotations?.get(ANNOTATION_INJECT)) === 'false') {
    state.skipped.push({ workload: label, reason: `${ANNOTATION_INJECT}: "false"` });
    return false;
  }
  if (spec.get('hostNetwork') === true) {
    // The sidecar's ports and, with --transparent, its iptables rules would land on the node.
    state.skipped.push({ workload: label, reason: 'hostNetwork pods are not injected' });
    return false;
  }

  const fail = (node: { range?: [number, number, number] | null | undefined }, reason: string): never => {
    const pos = state.lineCounter.linePos(node.range?.[0] ?? 0);
    throw new InjectError(pos.line, pos.col, `${label}: ${reason}`);
  };
  const opts = state.opts;
  const configMapName =
    str(annotations?.get(ANNOTATION_CONFIG_MAP)) ??
    (opts.configMap.includes('{name}')
      ? name === null
        ? fail(obj, 'no metadata.name to derive the ConfigMap name from; use --config-map')
        : opts.configMap.replaceAll('{name}', name)
      : opts.configMap);

  // Refuse what would make an invalid or silently broken Pod.
  const ours = new Set([SIDECAR_NAME, INIT_NAME]);
  const ourPorts = new Set([opts.inboundPort, opts.outboundPort, opts.adminPort]);
  const lists = [spec.get('containers', true), spec.get('initContainers', true)];
  for (let l = 0; l < lists.length; l++) {
    const list = lists[l];
    if (!isSeq(list)) continue;
    for (let i = 0; i < list.items.length; i++) {
      const c = asMap(list.items[i]);
      if (c === null) continue;
      const cname = str(c.get('name'));
      if (cname !== null && ours.has(cname)) {
        fail(c, `a container is already named "${cname}" but the template has no ${ANNOTATION_INJECTED} annotation`);
      }
      const ports = c.get('ports', true);
      if (!isSeq(ports)) continue;
      for (let p = 0; p < ports.items.length; p++) {
        const port = asMap(ports.items[p])?.get('containerPort');
        if (typeof port === 'number' && ourPorts.has(port)) {
          fail(
            c,
            `container "${cname ?? ''}" uses port ${port}, which the sidecar needs (see --inbound-port, --outbound-port, --admin-port)`,
          );
        }
      }
    }
  }
  const volumes = spec.get('volumes', true);
  if (isSeq(volumes)) {
    for (let i = 0; i < volumes.items.length; i++) {
      const v = asMap(volumes.items[i]);
      if (v !== null && str(v.get('name')) === CONFIG_VOLUME) fail(v, `a volume is already named "${CONFIG_VOLUME}"`);
    }
  }

  const containers = seqAt(doc, spec, 'containers', null);
  const appNames: string[] = [];
  const appPorts = new Map<number, string>();
  for (let i = 0; i < containers.items.length; i++) {
    const c = asMap(containers.items[i]);
    if (c === null) continue;
    const cname = str(c.get('name'));
    if (cname !== null) appNames.push(cname);
    const ports = c.get('ports', true);
    if (isSeq(ports)) {
      for (const item of ports.items) {
        const pm = asMap(item);
        const n = pm?.get('containerPort');
        if (typeof n === 'number') appPorts.set(n, str(pm?.get('name')) ?? '');
      }
    }
    if (!opts.transparent && opts.proxyEnv) {
      for (const setting of proxyEnv(opts)) {
        const own = ownSpelling(c, setting);
        if (own === null) addEnv(doc, c, setting);
        else {
          state.warnings.push(
            `${label}: container "${cname ?? ''}" sets ${own} itself, so ${setting.map((v) => v.name).join(' and ')} are left as they are ` +
              '(its outbound traffic reaches the sidecar only if that value points at it)',
          );
        }
      }
    }
  }
  state.workloads.push({
    label,
    namespace: str(meta?.get('namespace')) ?? 'default',
    labels: stringMap(tmplMeta?.get('labels', true)),
    ports: appPorts,
  });

  // Order of the init containers: iptables first (nothing may open a connection before the
  // rules exist), then the native sidecar, then the app's own init containers, which thereby
  // already have the proxy (as with Istio's native-sidecar mode).
  const sidecar = doc.createNode(sidecarContainer(opts));
  if (opts.legacy) {
    containers.items.unshift(sidecar);
  }
  if (opts.transparent || !opts.legacy) {
    const inits = seqAt(doc, spec, 'initContainers', 'containers');
    if (!opts.legacy) inits.items.unshift(sidecar);
    if (opts.transparent) inits.items.unshift(doc.createNode(initContainer(opts, sortedUnique(opts.excludeInboundPorts))));
  }
  seqAt(doc, spec, 'volumes', null).items.push(doc.createNode(configVolume(configMapName)));

  // The sidecar drains after SIGTERM for up to drain.delay + drain.timeout; a shorter grace
  // period would SIGKILL it mid-drain. Absent means Kubernetes' 30 s.
  const grace = spec.get('terminationGracePeriodSeconds');
  const needed = opts.drainSeconds + 5;
  if ((typeof grace === 'number' ? grace : 30) < needed) spec.set('terminationGracePeriodSeconds', needed);

  const metaNode = tmplMeta ?? insertBefore(doc, template, 'metadata', new YAMLMap(), 'spec');
  const annNode = annotations ?? insertBefore(doc, metaNode, 'annotations', new YAMLMap(), null);
  annNode.flow = false;
  if (opts.legacy && appNames[0] !== undefined && !annNode.has('kubectl.kubernetes.io/default-container')) {
    // The sidecar is containers[0]; keep `kubectl logs/exec` defaulting to the app.
    annNode.set('kubectl.kubernetes.io/default-container', appNames[0]);
  }
  annNode.set(ANNOTATION_INJECTED, 'true');
  // Quoted: a version such as 1.0 would otherwise read back as a number, and annotation values
  // must be strings.
  const version = new Scalar(OUTRIGGER_VERSION);
  version.type = Scalar.QUOTE_DOUBLE;
  annNode.set(ANNOTATION_VERSION, version);
  state.injected.push(label);
  return true;
}

/** The sequence under `key`, created (before `before`, if given) when absent; block style. */
function seqAt(doc: Document, map: YAMLMap, key: string, before: string | null): YAMLSeq {
  const node = map.get(key, true);
  if (isSeq(node)) {
    node.flow = false;
    return node;
  }
  return insertBefore(doc, map, key, new YAMLSeq(), before);
}

function insertBefore<T extends YAMLMap | YAMLSeq>(doc: Document, map: YAMLMap, key: string, value: T, before: string | null): T {
  const pair = doc.createPair(key, value);
  pair.value = value;
  let at = map.items.length;
  if (before !== null) {
    for (let i = 0; i < map.items.length; i++) {
      const k = map.items[i]?.key;
      if ((isScalar(k) ? k.value : k) === before) {
        at = i;
        break;
      }
    }
  }
  // An existing `key: null` (or scalar) is replaced rather than duplicated.
  const existing = map.items.findIndex((p) => (isScalar(p.key) ? p.key.value : p.key) === key);
  if (existing >= 0) map.items.splice(existing, 1, pair);
  else map.items.splice(at, 0, pair);
  return value;
}

/** The first spelling of `setting` the container's env already names, or null. */
function ownSpelling(container: YAMLMap, setting: readonly { name: string }[]): string | null {
  const env = container.get('env', true);
  if (!isSeq(env)) return null;
  for (let i = 0; i < env.items.length; i++) {
    const n = str(asMap(env.items[i])?.get('name'));
    if (n !== null && setting.some((v) => v.name === n)) return n;
  }
  return null;
}

function addEnv(doc: Document, container: YAMLMap, vars: readonly Record<string, unknown>[]): void {
  const seq = seqAt(doc, container, 'env', null);
  for (let i = 0; i < vars.length; i++) seq.items.push(doc.createNode(vars[i]));
}

function asMap(node: unknown): YAMLMap | null {
  return isMap(node) ? node : null;
}

function str(value: unknown): string | null {
  if (isScalar(value)) value = value.value;
  return typeof value === 'string' ? value : null;
}

function firstLine(s: string): string {
  const nl = s.indexOf('\n');
  return nl < 0 ? s : s.slice(0, nl);
}

function sortedUnique(ports: readonly number[]): number[] {
  return [...new Set(ports)].sort((a, b) => a - b);
}

/** Usage of `outrigger inject`, for `--help` and argument errors. */
export const INJECT_USAGE = `Usage: outrigger inject [FILE|-] [options]

Reads Kubernetes YAML (multi-document; stdin when FILE is - or absent), adds the outrigger
sidecar to every Pod template (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet,
ReplicationController, Job, CronJob, List items) and writes the result to stdout. Other
documents pass through byte for byte; a template annotated ${ANNOTATION_INJECTED}: "true" is left
alone, so running inject twice changes nothing more. Opt out per workload with the annotation
${ANNOTATION_INJECT}: "false".

Options:
  --image IMAGE                  sidecar image (default ${DEFAULT_INJECT_OPTIONS.image})
  --config-map NAME              ConfigMap with outrigger.yaml; {name} = workload name
                                 (default ${DEFAULT_INJECT_OPTIONS.configMap}; annotation ${ANNOTATION_CONFIG_MAP} wins)
  --inbound-port N               inbound listener port (default ${DEFAULT_INJECT_OPTIONS.inboundPort})
  --outbound-port N              outbound listener port (default ${DEFAULT_INJECT_OPTIONS.outboundPort})
  --admin-port N                 admin port on 127.0.0.1, used by the probes (default ${DEFAULT_INJECT_OPTIONS.adminPort})
  --legacy                       sidecar as the first container with a postStart hook that waits
                                 for /ready (for clusters without native sidecars, < 1.29)
  --transparent                  add the outrigger-init container (NET_ADMIN, NET_RAW, root) that
                                 redirects the pod's TCP traffic to the sidecar with iptables
  --exclude-inbound-ports LIST   comma-separated ports not redirected inbound (--transparent)
  --exclude-outbound-ports LIST  comma-separated ports not redirected outbound (--transparent)
  --exclude-outbound-cidrs LIST  comma-separated CIDRs not redirected outbound (--transparent)
  --no-proxy-env                 without --transparent, do not set HTTP_PROXY/NO_PROXY on app containers
  --drain-seconds S              drain.delay + drain.timeout of the sidecar config; the pod's
                                 terminationGracePeriodSeconds is raised to S+5 (default ${DEFAULT_INJECT_OPTIONS.drainSeconds})
  --cpu-request Q --memory-request Q --cpu-limit Q --memory-limit Q
                                 sidecar resources (default ${DEFAULT_INJECT_OPTIONS.cpuRequest}/${DEFAULT_INJECT_OPTIONS.memoryRequest} requests, ${DEFAULT_INJECT_OPTIONS.cpuLimit}/${DEFAULT_INJECT_OPTIONS.memoryLimit} limits)
`;

const QUANTITY = /^[0-9]+(\.[0-9]+)?(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/;
const CIDR = /^[0-9a-fA-F.:]+\/[0-9]{1,3}$/;

/**
 * Parses the arguments after `inject` (`argv` does not include the subcommand). `file` is null
 * for stdin (`-` or no FILE). `--help` is the CLI's business and is reported as unknown here.
 */
export function parseInjectArgs(argv: string[]): { file: string | null; opts: InjectOptions } | { error: string } {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        image: { type: 'string' },
        'config-map': { type: 'string' },
        'inbound-port': { type: 'string' },
        'outbound-port': { type: 'string' },
        'admin-port': { type: 'string' },
        legacy: { type: 'boolean' },
        transparent: { type: 'boolean' },
        'exclude-inbound-ports': { type: 'string' },
        'exclude-outbound-ports': { type: 'string' },
        'exclude-outbound-cidrs': { type: 'string' },
        'no-proxy-env': { type: 'boolean' },
        'drain-seconds': { type: 'string' },
        'cpu-request': { type: 'string' },
        'memory-request': { type: 'string' },
        'cpu-limit': { type: 'string' },
        'memory-limit': { type: 'string' },
      },
    });
  } catch (e) {
    return { error: (e as Error).message };
  }
  const v = parsed.values;
  if (parsed.positionals.length > 1) return { error: `expected at most one FILE, got: ${parsed.positionals.join(' ')}` };
  const d = DEFAULT_INJECT_OPTIONS;
  const problems: string[] = [];
  const port = (flag: string, raw: string | undefined, def: number): number => {
    if (raw === undefined) return def;
    const n = Number(raw);
    if (!/^[0-9]+$/.test(raw) || n < 1 || n > 65535) problems.push(`--${flag}: not a port: ${raw}`);
    return n;
  };
  const portList = (flag: string, raw: string | undefined): number[] => {
    if (raw === undefined || raw === '') return [];
    return raw.split(',').map((s) => port(flag, s.trim(), 0));
  };
  const quantity = (flag: string, raw: string | undefined, def: string): string => {
    if (raw === undefined) return def;
    if (!QUANTITY.test(raw)) problems.push(`--${flag}: not a Kubernetes quantity: ${raw}`);
    return raw;
  };
  const nonEmpty = (flag: string, raw: string | undefined, def: string): string => {
    if (raw === undefined) return def;
    if (raw.trim() === '') problems.push(`--${flag}: must not be empty`);
    return raw;
  };
  const cidrs = (v['exclude-outbound-cidrs'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const c of cidrs) if (!CIDR.test(c)) problems.push(`--exclude-outbound-cidrs: not a CIDR: ${c}`);
  const drainRaw = v['drain-seconds'];
  const drain = drainRaw === undefined ? d.drainSeconds : Number(drainRaw);
  if (drainRaw !== undefined && !/^[0-9]+$/.test(drainRaw)) problems.push(`--drain-seconds: not a whole number of seconds: ${drainRaw}`);
  const opts: InjectOptions = {
    image: nonEmpty('image', v.image, d.image),
    configMap: nonEmpty('config-map', v['config-map'], d.configMap),
    inboundPort: port('inbound-port', v['inbound-port'], d.inboundPort),
    outboundPort: port('outbound-port', v['outbound-port'], d.outboundPort),
    adminPort: port('admin-port', v['admin-port'], d.adminPort),
    legacy: v.legacy === true,
    transparent: v.transparent === true,
    excludeInboundPorts: portList('exclude-inbound-ports', v['exclude-inbound-ports']),
    excludeOutboundPorts: portList('exclude-outbound-ports', v['exclude-outbound-ports']),
    excludeOutboundCidrs: cidrs,
    proxyEnv: v['no-proxy-env'] !== true,
    drainSeconds: drain,
    cpuRequest: quantity('cpu-request', v['cpu-request'], d.cpuRequest),
    memoryRequest: quantity('memory-request', v['memory-request'], d.memoryRequest),
    cpuLimit: quantity('cpu-limit', v['cpu-limit'], d.cpuLimit),
    memoryLimit: quantity('memory-limit', v['memory-limit'], d.memoryLimit),
  };
  if (new Set([opts.inboundPort, opts.outboundPort, opts.adminPort]).size !== 3) {
    problems.push('--inbound-port, --outbound-port and --admin-port must differ');
  }
  if (problems.length > 0) return { error: problems.join('\n') };
  const file = parsed.positionals[0];
  return { file: file === undefined || file === '-' ? null : file, opts };
}
