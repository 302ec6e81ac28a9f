#!/bin/sh
# LVS-TUN to IPv6 real servers against the kernel's own decapsulation (`ip6_tunnel`, `fou`,
# `ip6_gre`), run as root inside a VM whose kernel has those modules (Debian 12's 6.12; this
# host's has not). A client, a director running lbd (generic XDP) and three real servers
# share a bridge, every host dual-stack; the real servers hold both VIPs on lo.
# - rs1 takes IPv6 in IPv6 and IPv4 in IPv6 on an ip6tnl device of `mode any`
#   (`ip link add ... type ip6tnl mode any`), for an IPv6 and an IPv4 service;
# - rs2 takes GUE over IPv6 (`ip fou add port 6080 gue -6`) into an ip6tnl device;
# - rs3 takes GRE over IPv6 on the ip6gre fallback device (`ip6gre0`), then, with
#   `--tun-csum`, on a device that expects checksums (`icsum`).
# Each round sends requests through the director and checks that every real server of the
# round answered. Prints "tun6-interop: ok" at the end. `cargo xtask test` runs it in its VM
# phase; by hand, from the workspace root, after a build:
#   vng -r /boot/vmlinuz-6.12.*-amd64 --disable-kvm --memory 2G --cpus 2 --rwdir /tmp -- \
#     sh -c "mount -t bpf bpf /sys/fs/bpf; LB_BIN=$PWD/target/debug tests/vm/tun6-interop.sh"
set -eu

LB_BIN=${LB_BIN:?directory of lbd and lbadm}
WORK=$(mktemp -d /tmp/tun6-interop.XXXXXX)
VIP6=fd00:100::100
VIP=10.0.0.100
DIR6=fd00::2
# Unix sockets cannot live on the VM's 9p share: the socket and state go to /run (a tmpfs).
SOCK=/run/tun6-interop.sock

cleanup() {
    for pid in $(cat "$WORK"/pids 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    sleep 1
    for ns in cl dir rs1 rs2 rs3; do ip netns del "$ns" 2>/dev/null || true; done
    ip link del br0 2>/dev/null || true
    rm -f "$SOCK" /run/tun6-interop.state
}
trap cleanup EXIT

modprobe ip6_tunnel
modprobe fou
modprobe fou6 2>/dev/null || true
modprobe ip6_gre

ip link add br0 type bridge
ip link set br0 up
n=1
for ns in cl dir rs1 rs2 rs3; do
    ip netns add "$ns"
    ip link add "v-$ns" type veth peer name eth0 netns "$ns"
    ip link set "v-$ns" master br0 up
    ip -n "$ns" addr add "10.0.0.$n/24" dev eth0
    ip -n "$ns" addr add "fd00::$n/64" dev eth0 nodad
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    n=$((n + 1))
done
# The client reaches the VIPs through the director.
ip -n cl route add "$VIP/32" via 10.0.0.2
ip -n cl -6 route add "$VIP6/128" via "$DIR6"

for rs in rs1 rs2 rs3; do
    ip -n "$rs" addr add "$VIP/32" dev lo
    ip -n "$rs" addr add "$VIP6/128" dev lo
    for s in net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
             net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
             net.ipv4.conf.eth0.rp_filter=0; do
        ip netns exec "$rs" sysctl -qw "$s"
    done
    mkdir -p "$WORK/$rs"
    echo "$rs" > "$WORK/$rs/who"
    ip netns exec "$rs" python3 -m http.server 80 --bind :: --directory "$WORK/$rs" \
        > "$WORK/$rs.log" 2>&1 &
    echo $! >> "$WORK/pids"
done
# rs1: RFC 2473 tunnels from the director, either inner family.
ip -n rs1 link add t6 type ip6tnl mode any local fd00::3 remote "$DIR6"
ip -n rs1 link set t6 up
ip netns exec rs1 sysctl -qw net.ipv4.conf.t6.rp_filter=0
# rs2: GUE over IPv6 on 6080, into an ip6tnl device for what GUE carries.
ip netns exec rs2 ip fou add port 6080 gue -6
ip -n rs2 link add t6 type ip6tnl mode any local fd00::4 remote "$DIR6"
ip -n rs2 link set t6 up
# rs3: GRE over IPv6 into the fallback device (which takes GRE without a checksum only).
ip -n rs3 link set ip6gre0 up

ip netns exec dir "$LB_BIN/lbd" --iface eth0 --xdp-mode skb --socket "$SOCK" \
     --state /run/tun6-interop.state --bpffs /sys/fs/bpf/tun6-interop > "$WORK/lbd.log" 2>&1 &
echo $! >> "$WORK/pids"
for _ in $(seq 1 60); do [ -S "$SOCK" ] && break; sleep 1; done
adm() { ip netns exec dir "$LB_BIN/lbadm" --socket "$SOCK" "$@"; }

# Waits until lbd's log has a line matching $1: here, a service whose real servers are all
# available (their MACs known through NDP), so that the first request is not lost.
logged() {
    for _ in $(seq 1 30); do
        grep -q "$1" "$WORK/lbd.log" && return 0
        sleep 1
    done
    echo "tun6-interop: lbd never logged '$1':"; cat "$WORK/lbd.log"; exit 1
}

# round WHAT URL N RS...: N requests to URL; each RS must have answered.
round() {
    what=$1 url=$2 count=$3
    shift 3
    got=""
    for _ in $(seq 1 "$count"); do
        who=$(ip netns exec cl curl -s --max-time 10 "$url" || echo FAIL)
        got="$got $who"
    done
    echo "tun6-interop: $what:$got"
    case "$got" in *FAIL*)
        echo "tun6-interop: $what: a request failed"
        for rs in rs1 rs2 rs3; do ip -n "$rs" -s link; done
        ip netns exec rs2 netstat -su || true
        cat "$WORK/lbd.log"
        exit 1;;
    esac
    for rs in "$@"; do
        echo "$got" | grep -q "$rs" || { echo "tun6-interop: $what: $rs never answered"; exit 1; }
    done
}

adm -A -t "[$VIP6]:80" -s rr
adm -a -t "[$VIP6]:80" -r "[fd00::3]:80" -i
adm -a -t "[$VIP6]:80" -r "[fd00::4]:80" -i --tun-type gue --tun-port 6080
adm -a -t "[$VIP6]:80" -r "[fd00::5]:80" -i --tun-type gre
# An IPv4 service whose real server is IPv6 (IPVS since 3.18): IPv4 in IPv6.
adm -A -t "$VIP:80" -s rr
adm -a -t "$VIP:80" -r "[fd00::3]:80" -i
logged 'service=TCP \[fd00:100::100\]:80 .*available=3'
logged 'service=TCP 10.0.0.100:80 .*available=1'
adm -Ln --tun-info
round "6in6, GUE and GRE over IPv6 without checksums" "http://[$VIP6]/who" 6 rs1 rs2 rs3
round "4in6 (an IPv4 service's IPv6 real server)" "http://$VIP/who" 2 rs1
adm -e -t "[$VIP6]:80" -r "[fd00::4]:80" -i --tun-type gue --tun-port 6080 --tun-csum
adm -e -t "[$VIP6]:80" -r "[fd00::5]:80" -i --tun-type gre --tun-csum
# GRE with checksums arrives on a device that expects them (`icsum`), keyed on the director's
# address, the outer source; the kernel verifies each checksum there.
ip -n rs3 link add g6c type ip6gre local fd00::5 remote "$DIR6" icsum
ip -n rs3 link set g6c up
adm -Ln --tun-info
round "GUE and GRE over IPv6 with checksums" "http://[$VIP6]/who" 6 rs1 rs2 rs3
# A 1 MB download through each tunnel: the kernel checks every UDP and GRE checksum.
head -c 1000003 /dev/urandom > "$WORK/rs1/big"
cp "$WORK/rs1/big" "$WORK/rs2/big"; cp "$WORK/rs1/big" "$WORK/rs3/big"
for i in 1 2 3; do
    ip netns exec cl curl -s --max-time 60 -o "$WORK/got$i" "http://[$VIP6]/big"
    cmp "$WORK/got$i" "$WORK/rs1/big"
done
echo "tun6-interop: downloads intact"
adm -Ln --stats
echo "tun6-interop: kernel counters rs1 (ip6tnl), rs2 (fou + ip6tnl), rs3 (ip6gre0, g6c):"
ip -n rs1 -s link show t6 | sed -n '3,4p'
ip -n rs2 -s link show t6 | sed -n '3,4p'
ip -n rs3 -s link show ip6gre0 | sed -n '3,4p'
ip -n rs3 -s link show g6c | sed -n '3,4p'
echo "tun6-interop: ok"
