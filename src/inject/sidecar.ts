/**
 * What `outrigger inject` adds to a Pod spec: the sidecar container (native or legacy), the
 * optional `outrigger-init` container for transparent interception, and the config volume. Plain
 * JSON-shaped objects, built from the options only; `index.ts` decides where they go.
 *
 * ## How kubelet probes reach the admin API
 * The admin listener stays on loopback (`127.0.0.1:15000`, docs/security.md: never 0.0.0.0 by default),
 * and kubelet's `httpGet` probes come from the node to the pod IP, so they cannot reach it. The
 * options considered:
 * - bind admin to `0.0.0.0`: exposes `/config` and `/metrics` to every pod in the cluster; rejected;
 * - `httpGet` against the inbound listener: that listener forwards everything to the app (so the
 *   probe would test the app, not the proxy), it may be absent (outbound-only configs), and with
 *   `inbound.tls.requireClientCert` kubelet has no client certificate; rejected;
 * - `exec` probes: slim images have no curl or wget, but the image always has `node`, so the probe
 *   is a one-line node script that GETs `http://127.0.0.1:ADMIN/ready` (or `/live`) and exits 0
 *   only on 200. It tests the real `/ready` semantics (config loaded, listeners bound, 503 while
 *   draining), works for every config, and needs no change to the proxy. The cost is one short
 *   node process per probe (about 40 MB for well under a second, inside the sidecar's cgroup),
 *   which is why the periods are 10 s and the memory limit keeps headroom. Chosen.
 */

/** Everything `inject` needs to know; `parseInjectArgs` fills the defaults. */
export interface InjectOptions {
  /** sidecar (and init) image */
  readonly image: string;
  /**
   * ConfigMap holding `outrigger.yaml`; `{name}` is replaced by the workload's name. The pod
   * template annotation `outrigger.io/config-map` overrides it per workload.
   */
  readonly configMap: string;
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
  /** sidecar as the first regular container with a postStart hook (clusters before 1.29) */
  readonly legacy: boolean;
  /** add the `outrigger-init` iptables container */
  readonly transparent: boolean;
  /** inbound ports not redirected to the inbound listener (app probe ports are added) */
  readonly excludeInboundPorts: readonly number[];
  readonly excludeOutboundPorts: readonly number[];
  /** destination CIDRs whose traffic is not redirected to the outbound listener */
  readonly excludeOutboundCidrs: readonly string[];
  /** without `transparent`: set HTTP_PROXY/NO_PROXY on app containers that do not set them */
  readonly proxyEnv: boolean;
  /**
   * drain.delay + drain.timeout of the sidecar's config, in seconds; the pod's
   * terminationGracePeriodSeconds is raised to this plus a 5 s margin when set lower.
   */
  readonly drainSeconds: number;
  readonly cpuRequest: string;
  readonly memoryRequest: string;
  readonly cpuLimit: string;
  readonly memoryLimit: string;
}

/** The program's version; also written to the `outrigger.io/version` annotation. */
export const OUTRIGGER_VERSION = '0.1.0';

export const DEFAULT_INJECT_OPTIONS: InjectOptions = Object.freeze({
  image: `ghcr.io/outrigger/outrigger:${OUTRIGGER_VERSION}`,
  configMap: '{name}-outrigger',
  inboundPort: 15006,
  outboundPort: 15001,
  adminPort: 15000,
  legacy: false,
  transparent: false,
  excludeInboundPorts: Object.freeze([]),
  excludeOutboundPorts: Object.freeze([]),
  excludeOutboundCidrs: Object.freeze([]),
  proxyEnv: true,
  drainSeconds: 25,
  cpuRequest: '100m',
  memoryRequest: '128Mi',
  cpuLimit: '1',
  memoryLimit: '256Mi',
});

export const SIDECAR_NAME = 'outrigger';
export const INIT_NAME = 'outrigger-init';
export const CONFIG_VOLUME = 'outrigger-config';
export const CONFIG_DIR = '/etc/outrigger';
export const PROXY_UID = 1337;
/** Where the Dockerfile installs docker/iptables.sh. */
export const IPTABLES_SCRIPT = '/usr/local/bin/outrigger-iptables';

export const ANNOTATION_INJECTED = 'outrigger.io/injected';
export const ANNOTATION_VERSION = 'outrigger.io/version';
export const ANNOTATION_INJECT = 'outrigger.io/inject';
export const ANNOTATION_CONFIG_MAP = 'outrigger.io/config-map';

type Json = Record<string, unknown>;

/**
 * A node one-liner that exits 0 only when `GET http://127.0.0.1:PORT/PATH` answers 200 within
 * 2 s. CommonJS on purpose: `node -e` evaluates CommonJS on every supported Node version.
 */
export function probeScript(port: number, path: string): string {
  return (
    `require('http').get({host:'127.0.0.1',port:${port},path:'${path}',timeout:2000},` +
    `r=>process.exit(r.statusCode===200?0:1))` +
    `.on('timeout',function(){this.destroy()}).on('error',()=>process.exit(1))`
  );
}

/** The postStart script of `--legacy`: polls `/ready` every 250 ms for up to 120 s. */
export function waitReadyScript(port: number): string {
  return (
    `const h=require('http'),end=Date.now()+120000;` +
    `function again(){if(Date.now()>end)process.exit(1);setTimeout(once,250)}` +
    `function once(){h.get({host:'127.0.0.1',port:${port},path:'/ready',timeout:1000},` +
    `r=>{r.resume();if(r.statusCode===200)process.exit(0);again()})` +
    `.on('timeout',function(){this.destroy()}).on('error',again)}once()`
  );
}

function execProbe(port: number, path: string, period: number, failures: number): Json {
  return {
    exec: { command: ['node', '-e', probeScript(port, path)] },
    periodSeconds: period,
    timeoutSeconds: 3,
    failureThreshold: failures,
  };
}

/** The outrigger container; `legacy` decides native-sidecar fields vs. the postStart hook. */
export function sidecarContainer(opts: InjectOptions): Json {
  const c: Json = { name: SIDECAR_NAME, image: opts.image };
  // A restartable init container is a native sidecar (Kubernetes 1.29+): it starts before the
  // app, keeps running beside it, does not keep a Job from completing, and stops after the app.
  if (!opts.legacy) c['restartPolicy'] = 'Always';
  c['args'] = ['run', '--config', `${CONFIG_DIR}/outrigger.yaml`];
  c['ports'] = [{ name: 'outrigger-in', containerPort: opts.inboundPort, protocol: 'TCP' }];
  c['env'] = [
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    { name: 'OUTRIGGER_CONFIG', value: `${CONFIG_DIR}/outrigger.yaml` },
  ];
  c['resources'] = {
    requests: { cpu: opts.cpuRequest, memory: opts.memoryRequest },
    limits: { cpu: opts.cpuLimit, memory: opts.memoryLimit },
  };
  c['securityContext'] = {
    runAsUser: PROXY_UID,
    runAsGroup: PROXY_UID,
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
  // A directory mount, never subPath: kubelet updates a ConfigMap volume by swapping the `..data`
  // symlink, which the proxy watches; a subPath mount is a bind of one file and never updates.
  c['volumeMounts'] = [{ name: CONFIG_VOLUME, mountPath: CONFIG_DIR, readOnly: true }];
  if (opts.legacy) {
    // kubelet runs containers' postStart hooks in order and starts the next container only when
    // the hook returned, so the app starts after the proxy answers /ready.
    c['lifecycle'] = {
      postStart: { exec: { command: ['node', '-e', waitReadyScript(opts.adminPort)] } },
    };
  } else {
    // kubelet starts the next container only once a sidecar's startupProbe succeeded.
    c['startupProbe'] = execProbe(opts.adminPort, '/ready', 1, 120);
  }
  c['livenessProbe'] = execProbe(opts.adminPort, '/live', 10, 3);
  c['readinessProbe'] = execProbe(opts.adminPort, '/ready', 10, 3);
  return c;
}

/** The root init container that installs docker/iptables.sh's rules in the pod's netns. */
export function initContainer(opts: InjectOptions, excludeInbound: readonly number[]): Json {
  const args = ['--inbound-port', String(opts.inboundPort), '--outbound-port', String(opts.outboundPort), '--proxy-uid', String(PROXY_UID)];
  if (excludeInbound.length > 0) args.push('--exclude-inbound-ports', excludeInbound.join(','));
  if (opts.excludeOutboundPorts.length > 0) {
    args.push('--exclude-outbound-ports', opts.excludeOutboundPorts.join(','));
  }
  if (opts.excludeOutboundCidrs.length > 0) {
    args.push('--exclude-outbound-cidrs', opts.excludeOutboundCidrs.join(','));
  }
  return {
    name: INIT_NAME,
    image: opts.image,
    command: [IPTABLES_SCRIPT],
    args,
    resources: {
      requests: { cpu: '10m', memory: '16Mi' },
      limits: { cpu: '100m', memory: '64Mi' },
    },
    // Root with exactly the two capabilities iptables needs, as istio-init; the root filesystem
    // stays writable because iptables-legacy takes its lock in /run/xtables.lock.
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
    },
  };
}

/** The ConfigMap volume the sidecar mounts. */
export function configVolume(configMap: string): Json {
  return { name: CONFIG_VOLUME, configMap: { name: configMap } };
}

/**
 * Env added to app containers in explicit-proxy mode (no `--transparent`), as settings: each is
 * one setting under its spellings (`HTTP_PROXY` and `http_proxy` are read by different
 * libraries), so an app that sets either spelling keeps its own value and gets neither of ours.
 */
export function proxyEnv(opts: InjectOptions): { name: string; value: string }[][] {
  const proxy = `http://127.0.0.1:${opts.outboundPort}`;
  const none = 'localhost,127.0.0.1,::1';
  return [
    [
      { name: 'HTTP_PROXY', value: proxy },
      { name: 'http_proxy', value: proxy },
    ],
    [
      { name: 'NO_PROXY', value: none },
      { name: 'no_proxy', value: none },
    ],
  ];
}
