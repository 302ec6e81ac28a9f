#!/bin/sh
# Connection synchronisation against the kernel's own sync daemon (IPVS, `ip_vs_sync.c`), run
# as root inside a VM whose kernel has `ip_vs` (Debian 12's 6.12; this host's has not), with
# Debian's ipvsadm (IPVSADM: its path; LD_LIBRARY_PATH for its libpopt if unpacked by hand).
#
# A client, two directors (kdir: the kernel's IPVS; lbdir: lbd, generic XDP) and two real
# servers share a bridge; both directors have the same DR services (VIP:80 rr, VIP:8080 rr
# persistent).
#  1. kernel master -> lb backup: `ipvsadm --start-daemon master` on kdir, `lbadm
#     --start-daemon backup` on lbdir. The client opens connections through kdir; lbdir's
#     `lbadm -Lnc` must list each one (and the persistence template) with the real server
#     IPVS chose. Then the VIP moves to lbdir and every connection must complete its request
#     (lbd has no sloppy_tcp here: without an entry, lbdir's kernel would reset them).
#  2. lb master -> kernel backup: the roles swapped; connections opened through lbdir must
#     appear in kdir's `ipvsadm -Lnc` with lb's real servers.
#  3. `-L --daemon`: ipvsadm's lines for the kernel's daemons equal lbadm's for the same
#     commands.
# Prints "sync-interop: ok" at the end. By hand, from the workspace root, after a build:
#   vng -r /boot/vmlinuz-6.12.*-amd64 --disable-kvm --memory 2G --cpus 2 --rwdir /tmp -- \
#     sh -c "mount -t bpf bpf /sys/fs/bpf; LB_BIN=$PWD/target/debug IPVSADM=... tests/vm/sync-interop.sh"
set -eu

LB_BIN=${LB_BIN:?directory of lbd and lbadm}
IPVSADM=${IPVSADM:?path of ipvsadm}
WORK=$(mktemp -d /tmp/sync-interop.XXXXXX)
VIP=10.0.0.100
SOCK=/run/sync-interop.sock

cleanup() {
    for pid in $(cat "$WORK"/pids 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    sleep 1
    for ns in cl kdir lbdir rs1 rs2; do ip netns del "$ns" 2>/dev/null || true; done
    ip link del br0 2>/dev/null || true
    rm -f "$SOCK" /run/sync-interop.state
}
trap cleanup EXIT
fail() {
    echo "sync-interop: FAILED: $*"
    echo "--- lbd log ---"; tail -30 "$WORK/lbd.log" || true
    exit 1
}

modprobe ip_vs
modprobe ip_vs_rr

ip link add br0 type bridge
ip link set br0 up
n=1
for ns in cl kdir lbdir rs1 rs2; do
    ip netns add "$ns"
    ip link add "v-$ns" type veth peer name eth0 netns "$ns"
    ip link set "v-$ns" master br0 up
    ip -n "$ns" addr add "10.0.0.$n/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    n=$((n + 1))
done
for rs in rs1 rs2; do
    ip -n "$rs" addr add "$VIP/32" dev lo
    ip netns exec "$rs" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
    mkdir -p "$WORK/$rs"
    echo "$rs" > "$WORK/$rs/who"
    for port in 80 8080; do
        ip netns exec "$rs" python3 -m http.server "$port" --bind 0.0.0.0 \
            --directory "$WORK/$rs" > "$WORK/$rs.$port.log" 2>&1 &
        echo $! >> "$WORK/pids"
    done
done

kadm() { ip netns exec kdir "$IPVSADM" "$@"; }
ip netns exec lbdir "$LB_BIN/lbd" --iface eth0 --xdp-mode skb --socket "$SOCK" \
     --state /run/sync-interop.state --bpffs /sys/fs/bpf/sync-interop > "$WORK/lbd.log" 2>&1 &
echo $! >> "$WORK/pids"
for _ in $(seq 1 60); do [ -S "$SOCK" ] && break; sleep 1; done
ladm() { ip netns exec lbdir "$LB_BIN/lbadm" --socket "$SOCK" "$@"; }

rules="-A -t $VIP:80 -s rr
-a -t $VIP:80 -r 10.0.0.4 -g
-a -t $VIP:80 -r 10.0.0.5 -g
-A -t $VIP:8080 -s rr -p 300
-a -t $VIP:8080 -r 10.0.0.4 -g
-a -t $VIP:8080 -r 10.0.0.5 -g"
echo "$rules" | kadm -R
echo "$rules" | ladm -R

# Gives the VIP to director $1 (kdir or lbdir) and points the client at it.
give_vip() {
    for d in kdir lbdir; do ip -n "$d" addr del "$VIP/32" dev eth0 2>/dev/null || true; done
    ip -n "$1" addr add "$VIP/32" dev eth0
    mac=$(ip netns exec "$1" cat /sys/class/net/eth0/address)
    ip -n cl neigh replace "$VIP" lladdr "$mac" dev eth0 nud permanent
}

# The client: opens connections (ports 80 80 80 80 8080 8080), sends half a request on each
# (IPVS syncs a connection at its third packet), writes its ports to $WORK/$1.state, waits for
# $WORK/$1.go, then finishes each request and checks the answer.
cat > "$WORK/client.py" <<'EOF'
import os, socket, sys, time
work, tag, vip = sys.argv[1], sys.argv[2], sys.argv[3]
conns = []
for port in (80, 80, 80, 80, 8080, 8080):
    s = socket.create_connection((vip, port), timeout=5)
    s.sendall(b"GET /who HTTP/1.0\r\n")
    conns.append(s)
ports = " ".join(str(s.getsockname()[1]) for s in conns)
with open(f"{work}/{tag}.tmp", "w") as f:
    f.write(ports + "\n")
os.rename(f"{work}/{tag}.tmp", f"{work}/{tag}.state")
while not os.path.exists(f"{work}/{tag}.go"):
    time.sleep(0.2)
ok = 0
for s in conns:
    s.settimeout(20)
    try:
        s.sendall(b"\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        if data.startswith(b"HTTP/1.0 200"):
            ok += 1
        else:
            print("client: unexpected answer", data[:80], flush=True)
    except OSError as e:
        print("client: port", s.getsockname()[1], e, flush=True)
print(f"client: {ok} of {len(conns)} completed", flush=True)
sys.exit(0 if ok == len(conns) else 1)
EOF

# The entries of client run $1 (its ports) and the persistence templates in -Lnc output, as
# "state client virtual real" lines, sorted. IPVS lists a template under which a connection
# was established as ASSURED, lb as NONE: both are "template" here.
table() {
    awk -v ports="$(cat "$WORK/$1.state")" '
        BEGIN { n = split(ports, p, " "); for (i = 1; i <= n; i++) mine["10.0.0.1:" p[i]] = 1 }
        NR > 2 && ($3 == "NONE" || $3 == "ASSURED") { print "template", $4, $5, $6; next }
        NR > 2 && $4 in mine { print $3, $4, $5, $6 }' | sort
}

wait_for() { # $1: file to appear
    for _ in $(seq 1 100); do [ -e "$1" ] && return 0; sleep 0.2; done
    fail "timed out waiting for $1"
}

# ----- 1. kernel master -> lb backup -----
kadm --start-daemon master --mcast-interface eth0 --syncid 7
ladm --start-daemon backup --mcast-interface eth0 --syncid 7
kernel_master=$(kadm -L --daemon)
lb_backup=$(ladm -L --daemon)
give_vip kdir
ip netns exec cl python3 "$WORK/client.py" "$WORK" one "$VIP" > "$WORK/client1.log" 2>&1 &
client=$!
wait_for "$WORK/one.state"
want=$(kadm -Lnc | table one)
[ "$(echo "$want" | wc -l)" -eq 7 ] || fail "IPVS lists $(echo "$want" | wc -l) entries, not 6 connections and a template:
$want
$(kadm -Lnc)"
got=""
for _ in $(seq 1 30); do
    got=$(ladm -Lnc | table one)
    [ "$got" = "$want" ] && break
    sleep 1
done
[ "$got" = "$want" ] || fail "lb's backup lists
$got
where the kernel's master has
$want"
echo "sync-interop: lb's backup lists the kernel master's 6 connections and template"
give_vip lbdir
touch "$WORK/one.go"
wait "$client" || fail "connections broke after the failover to lb: $(cat "$WORK/client1.log")"
echo "sync-interop: $(cat "$WORK/client1.log") through lb after the failover"

# ----- 2. lb master -> kernel backup -----
kadm --stop-daemon master
ladm --stop-daemon backup
ladm --start-daemon master --mcast-interface eth0 --syncid 7
kadm --start-daemon backup --mcast-interface eth0 --syncid 7
lb_master=$(ladm -L --daemon)
kernel_backup=$(kadm -L --daemon)
ip netns exec cl python3 "$WORK/client.py" "$WORK" two "$VIP" > "$WORK/client2.log" 2>&1 &
client=$!
wait_for "$WORK/two.state"
want=""
for _ in $(seq 1 10); do
    want=$(ladm -Lnc | table two)
    [ "$(echo "$want" | grep -c ESTABLISHED)" -eq 6 ] && break
    sleep 1
done
got=""
for _ in $(seq 1 30); do
    got=$(kadm -Lnc | table two)
    [ "$got" = "$want" ] && break
    sleep 1
done
[ "$got" = "$want" ] || fail "the kernel's backup lists
$got
where lb's master has
$want"
echo "sync-interop: the kernel's backup lists lb master's connections and template"
give_vip kdir
touch "$WORK/two.go"
wait "$client" || fail "connections broke after the failover to IPVS: $(cat "$WORK/client2.log")"
echo "sync-interop: $(cat "$WORK/client2.log") through IPVS after the failover"

# ----- 3. -L --daemon -----
[ "$kernel_master" = "$lb_master" ] || fail "ipvsadm: '$kernel_master', lbadm: '$lb_master'"
[ "$kernel_backup" = "$lb_backup" ] || fail "ipvsadm: '$kernel_backup', lbadm: '$lb_backup'"
echo "sync-interop: -L --daemon: '$lb_master' / '$lb_backup' as ipvsadm"
echo "sync-interop: ok"
