#!/bin/sh
# outrigger transparent interception: installs nat rules in the pod's network namespace that send
# the pod's TCP traffic through the sidecar, as istio-init does.
#   inbound:  PREROUTING -> OUTRIGGER_INBOUND -> REDIRECT --to-ports INBOUND_PORT  (15006)
#   outbound: OUTPUT     -> OUTRIGGER_OUTPUT  -> REDIRECT --to-ports OUTBOUND_PORT (15001)
# Exempt from the outbound redirect: traffic of the proxy's own UID (else it would loop back into
# itself), loopback destinations (app -> 127.0.0.1:15001 explicit proxying, the admin port
# 127.0.0.1:15000, proxy -> app at 127.0.0.1), and the excluded ports and CIDRs.
# Idempotent: the chains are created if missing and flushed, and the jumps to them are removed
# before being added again, so running it twice leaves exactly one set of rules.
#
# Settings, flag or environment (flags win):
#   --inbound-port N            OUTRIGGER_INBOUND_PORT          default 15006
#   --outbound-port N           OUTRIGGER_OUTBOUND_PORT         default 15001
#   --proxy-uid N               OUTRIGGER_PROXY_UID             default 1337
#   --exclude-inbound-ports L   OUTRIGGER_EXCLUDE_INBOUND_PORTS  comma-separated, default none
#   --exclude-outbound-ports L  OUTRIGGER_EXCLUDE_OUTBOUND_PORTS comma-separated, default none
#   --exclude-outbound-cidrs L  OUTRIGGER_EXCLUDE_OUTBOUND_CIDRS comma-separated, default none
#   --no-inbound                OUTRIGGER_INBOUND=0             do not redirect inbound traffic
#   --iptables CMD              IPTABLES                        default iptables
#   --dry-run                   print the iptables commands instead of running them
#   --clean                     remove the rules and chains, then exit
# IPv4 only.
set -eu

INBOUND_PORT="${OUTRIGGER_INBOUND_PORT:-15006}"
OUTBOUND_PORT="${OUTRIGGER_OUTBOUND_PORT:-15001}"
PROXY_UID="${OUTRIGGER_PROXY_UID:-1337}"
EXCLUDE_IN="${OUTRIGGER_EXCLUDE_INBOUND_PORTS:-}"
EXCLUDE_OUT="${OUTRIGGER_EXCLUDE_OUTBOUND_PORTS:-}"
EXCLUDE_CIDRS="${OUTRIGGER_EXCLUDE_OUTBOUND_CIDRS:-}"
INBOUND="${OUTRIGGER_INBOUND:-1}"
IPT="${IPTABLES:-iptables}"
DRY_RUN=0
CLEAN=0

usage() {
  sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

need() { [ $# -ge 2 ] || { echo "outrigger-iptables: $1 needs a value" >&2; exit 2; }; }

while [ $# -gt 0 ]; do
  case "$1" in
    --inbound-port) need "$@"; INBOUND_PORT="$2"; shift 2 ;;
    --outbound-port) need "$@"; OUTBOUND_PORT="$2"; shift 2 ;;
    --proxy-uid) need "$@"; PROXY_UID="$2"; shift 2 ;;
    --exclude-inbound-ports) need "$@"; EXCLUDE_IN="$2"; shift 2 ;;
    --exclude-outbound-ports) need "$@"; EXCLUDE_OUT="$2"; shift 2 ;;
    --exclude-outbound-cidrs) need "$@"; EXCLUDE_CIDRS="$2"; shift 2 ;;
    --no-inbound) INBOUND=0; shift ;;
    --iptables) need "$@"; IPT="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --clean) CLEAN=1; shift ;;
    -h|--help) usage ;;
    *) echo "outrigger-iptables: unknown argument: $1" >&2; usage ;;
  esac
done

is_port() {
  case "$1" in ''|*[!0-9]*) return 1 ;; esac
  [ "$1" -ge 1 ] && [ "$1" -le 65535 ]
}
for p in "$INBOUND_PORT" "$OUTBOUND_PORT"; do
  is_port "$p" || { echo "outrigger-iptables: not a port: $p" >&2; exit 2; }
done
case "$PROXY_UID" in ''|*[!0-9]*) echo "outrigger-iptables: not a UID: $PROXY_UID" >&2; exit 2 ;; esac
# Lists: commas to spaces; every entry is checked before any rule changes.
EXCLUDE_IN=$(echo "$EXCLUDE_IN" | tr ',' ' ')
EXCLUDE_OUT=$(echo "$EXCLUDE_OUT" | tr ',' ' ')
EXCLUDE_CIDRS=$(echo "$EXCLUDE_CIDRS" | tr ',' ' ')
for p in $EXCLUDE_IN $EXCLUDE_OUT; do
  is_port "$p" || { echo "outrigger-iptables: not a port: $p" >&2; exit 2; }
done
for c in $EXCLUDE_CIDRS; do
  case "$c" in */*) ;; *) echo "outrigger-iptables: not a CIDR: $c" >&2; exit 2 ;; esac
done

# ipt ARGS...: run (or with --dry-run print) one iptables command in the nat table.
ipt() {
  if [ "$DRY_RUN" = 1 ]; then
    echo "$IPT -t nat $*"
  else
    "$IPT" -t nat "$@"
  fi
}

# Removes every jump from a built-in chain to ours (there may be several after a crash midway).
unhook() {
  [ "$DRY_RUN" = 1 ] && { echo "$IPT -t nat -D $1 -p tcp -j $2  # repeated while present"; return 0; }
  while "$IPT" -t nat -D "$1" -p tcp -j "$2" 2>/dev/null; do :; done
}

# Creates the chain if missing, else empties it.
fresh_chain() {
  if [ "$DRY_RUN" = 1 ]; then
    echo "$IPT -t nat -N $1  # or -F $1 when it exists"
  elif "$IPT" -t nat -N "$1" 2>/dev/null; then
    :
  else
    "$IPT" -t nat -F "$1"
  fi
}

drop_chain() {
  if [ "$DRY_RUN" = 1 ]; then
    echo "$IPT -t nat -F $1"; echo "$IPT -t nat -X $1"
  else
    "$IPT" -t nat -F "$1" 2>/dev/null || true
    "$IPT" -t nat -X "$1" 2>/dev/null || true
  fi
}

unhook PREROUTING OUTRIGGER_INBOUND
unhook OUTPUT OUTRIGGER_OUTPUT
if [ "$CLEAN" = 1 ]; then
  drop_chain OUTRIGGER_INBOUND
  drop_chain OUTRIGGER_OUTPUT
  exit 0
fi

# --- inbound: connections arriving at the pod go to the inbound listener -----------------------
fresh_chain OUTRIGGER_INBOUND
if [ "$INBOUND" != 0 ]; then
  for p in $EXCLUDE_IN; do
    ipt -A OUTRIGGER_INBOUND -p tcp --dport "$p" -j RETURN
  done
  ipt -A OUTRIGGER_INBOUND -p tcp -j REDIRECT --to-ports "$INBOUND_PORT"
  ipt -A PREROUTING -p tcp -j OUTRIGGER_INBOUND
fi

# --- outbound: connections the app opens go to the outbound listener --------------------------
fresh_chain OUTRIGGER_OUTPUT
# The proxy's own connections (to upstreams, and inbound -> app) must leave as they are.
ipt -A OUTRIGGER_OUTPUT -m owner --uid-owner "$PROXY_UID" -j RETURN
# Loopback: explicit proxying to 127.0.0.1:OUTBOUND_PORT, the admin port, local helpers.
ipt -A OUTRIGGER_OUTPUT -d 127.0.0.0/8 -j RETURN
for p in $EXCLUDE_OUT; do
  ipt -A OUTRIGGER_OUTPUT -p tcp --dport "$p" -j RETURN
done
for c in $EXCLUDE_CIDRS; do
  ipt -A OUTRIGGER_OUTPUT -d "$c" -j RETURN
done
ipt -A OUTRIGGER_OUTPUT -p tcp -j REDIRECT --to-ports "$OUTBOUND_PORT"
ipt -A OUTPUT -p tcp -j OUTRIGGER_OUTPUT

[ "$DRY_RUN" = 1 ] || echo "outrigger-iptables: inbound -> :$INBOUND_PORT, outbound -> :$OUTBOUND_PORT, proxy uid $PROXY_UID exempt" >&2
