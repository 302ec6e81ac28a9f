#!/bin/sh
# LVS-TUN with GUE and GRE against the kernel's own decapsulation (`fou`, `ipip`, `ip_gre`),
# run as root inside a VM whose kernel has those modules (Debian 12's 6.12; this host's has
# not). A client, a director running lbd (generic XDP) and two real servers share a bridge;
# rs1 takes GUE on port 6080 (`ip fou add port 6080 gue` + tunl0), rs2 takes GRE (gre0); both
# hold the VIP on lo. Each round sends requests through the director and checks that both
# real servers answered; between rounds `lbadm -e` changes the tunnels' checksum options.
# Prints "tun-interop: ok" at the end. `cargo xtask test` runs it in its VM phase; by hand, from
# the workspace root, after a build:
#   vng -r /boot/vmlinuz-6.12.*-amd64 --disable-kvm --memory 2G --cpus 2 --rwdir /tmp -- \
#     sh -c "mount -t bpf bpf /sys/fs/bpf; LB_BIN=$PWD/target/debug tests/vm/tun-interop.sh"
set -eu

LB_BIN=${LB_BIN:?directory of lbd and lbadm}
WORK=$(mktemp -d /tmp/tun-interop.XXXXXX)
VIP=10.0.0.100
# Unix sockets cannot live on the VM's 9p share: the socket and state go to /run (a tmpfs).
SOCK=/run/tun-interop.sock

cleanup() {
    for pid in $(cat "$WORK"/pids 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    sleep 1
    for ns in cl dir rs1 rs2; do ip netns del "$ns" 2>/dev/null || true; done
    ip link del br0 2>/dev/null || true
    rm -f "$SOCK" /run/tun-interop.state
}
trap cleanup EXIT

modprobe fou
modprobe ipip
modprobe ip_gre

ip link add br0 type bridge
ip link set br0 up
n=1
for ns in cl dir rs1 rs2; do
    ip netns add "$ns"
    ip link add "v-$ns" type veth peer name eth0 netns "$ns"
    ip link set "v-$ns" master br0 up
    ip -n "$ns" addr add "10.0.0.$n/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    n=$((n + 1))
done
# The client reaches the VIP through the director.
ip -n cl route add "$VIP/32" via 10.0.0.2

for rs in rs1 rs2; do
    ip -n "$rs" addr add "$VIP/32" dev lo
    for s in net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
             net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
             net.ipv4.conf.eth0.rp_filter=0; do
        ip netns exec "$rs" sysctl -qw "$s"
    done
    mkdir -p "$WORK/$rs"
    echo "$rs" > "$WORK/$rs/who"
    ip netns exec "$rs" python3 -m http.server 80 --bind 0.0.0.0 --directory "$WORK/$rs" \
        > "$WORK/$rs.log" 2>&1 &
    echo $! >> "$WORK/pids"
done
# rs1: GUE on 6080 into the IP-in-IP fallback device.
ip netns exec rs1 ip fou add port 6080 gue
ip -n rs1 link set tunl0 up
ip netns exec rs1 sysctl -qw net.ipv4.conf.tunl0.rp_filter=0
# rs2: GRE into the GRE fallback device (which takes GRE without a checksum only: the kernel
# drops GRE whose checksum flag differs from the device's `icsum`).
ip -n rs2 link set gre0 up
ip netns exec rs2 sysctl -qw net.ipv4.conf.gre0.rp_filter=0

ip netns exec dir "$LB_BIN/lbd" --iface eth0 --xdp-mode skb --socket "$SOCK" \
     --state /run/tun-interop.state --bpffs /sys/fs/bpf/tun-interop > "$WORK/lbd.log" 2>&1 &
echo $! >> "$WORK/pids"
for _ in $(seq 1 60); do [ -S "$SOCK" ] && break; sleep 1; done
adm() { ip netns exec dir "$LB_BIN/lbadm" --socket "$SOCK" "$@"; }

adm -A -t "$VIP:80" -s rr
round() {
    what=$1
    got=""
    for i in 1 2 3 4; do
        who=$(ip netns exec cl curl -s --max-time 10 "http://$VIP/who" || echo FAIL)
        got="$got $who"
    done
    echo "tun-interop: $what:$got"
    case "$got" in *FAIL*)
        echo "tun-interop: $what: a request failed"
        ip -n rs1 -s link show tunl0; ip -n rs2 -s -s link; ip netns exec rs1 netstat -su || true
        exit 1;;
    esac
    echo "$got" | grep -q rs1 || { echo "tun-interop: $what: rs1 (GUE) never answered"; exit 1; }
    echo "$got" | grep -q rs2 || { echo "tun-interop: $what: rs2 (GRE) never answered"; exit 1; }
}
adm -a -t "$VIP:80" -r 10.0.0.3:80 -i --tun-type gue --tun-port 6080
adm -a -t "$VIP:80" -r 10.0.0.4:80 -i --tun-type gre
adm -Ln --tun-info
round "GUE and GRE without checksums"
adm -e -t "$VIP:80" -r 10.0.0.3:80 -i --tun-type gue --tun-port 6080 --tun-csum
adm -e -t "$VIP:80" -r 10.0.0.4:80 -i --tun-type gre --tun-csum
# GRE with checksums arrives on a device that expects them (`icsum`), keyed on the director's
# address, the outer source; the kernel verifies each checksum there.
ip -n rs2 link add grec type gre local 10.0.0.4 remote 10.0.0.2 icsum
ip -n rs2 link set grec up
ip netns exec rs2 sysctl -qw net.ipv4.conf.grec.rp_filter=0
adm -Ln --tun-info
round "GUE and GRE with checksums"
adm -e -t "$VIP:80" -r 10.0.0.3:80 -i --tun-type gue --tun-port 6080 --tun-remcsum
round "GUE with remcsum (a full UDP checksum), GRE with checksum"
# A 1 MB download through each tunnel: the kernel checks every UDP and GRE checksum.
head -c 1000003 /dev/urandom > "$WORK/rs1/big"; cp "$WORK/rs1/big" "$WORK/rs2/big"
for i in 1 2; do
    ip netns exec cl curl -s --max-time 30 -o "$WORK/got$i" "http://$VIP/big"
    cmp "$WORK/got$i" "$WORK/rs1/big"
done
echo "tun-interop: downloads intact"
adm -Ln --stats
echo "tun-interop: kernel counters rs1 (fou/tunl0):"
ip -n rs1 -s link show tunl0 | sed -n '3,4p'
echo "tun-interop: kernel counters rs2 (gre0, then grec with icsum):"
ip -n rs2 -s link show gre0 | sed -n '3,4p'
ip -n rs2 -s link show grec | sed -n '3,4p'
echo "tun-interop: ok"
