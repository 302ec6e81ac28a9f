#!/usr/bin/env python3
"""Records which real server the kernel's IPVS gives each of a set of TCP flows.

Run by `cargo xtask ipvs-golden` as root in a VM whose kernel has `ip_vs` (see README.md),
with the real `ipvsadm` on PATH. For each case: a fresh pair of network namespaces (IPVS
state is per namespace, so no case sees another's connections), the director `d` with the
VIP and a service configured by ipvsadm, DR real servers behind a NOARP dummy device (they
never answer: only IPVS's choice matters), and the client `c` on a veth that sends raw SYNs
(IP_HDRINCL) from the case's source addresses and ports, one at a time in order. Then
`ipvsadm -Lnc` gives each flow's real server. Prints `### CASE name` and the case's file
for each case, `### END` at the end.

`record.py send FILE` (internal) sends the SYNs listed in FILE, from the client namespace.
"""

import os
import socket
import struct
import subprocess
import sys
import time

VIP = "203.0.113.10"
PORT = 80
CLIENT_NET_ADDR = "203.0.113.1"
DIRECTOR_ADDR = "203.0.113.2"
# The fixture world's real servers A, B, C, D.
REALS = {"A": "10.1.0.11", "B": "10.1.0.12", "C": "10.1.0.13", "D": "10.1.0.14"}


class Rng:
    """A small deterministic generator (xorshift64*), so the flows never change."""

    def __init__(self, seed):
        self.state = seed or 1

    def next(self):
        x = self.state
        x ^= (x >> 12) & 0xFFFFFFFFFFFFFFFF
        x ^= (x << 25) & 0xFFFFFFFFFFFFFFFF
        x ^= (x >> 27) & 0xFFFFFFFFFFFFFFFF
        self.state = x
        return (x * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF

    def below(self, n):
        return (self.next() >> 32) % n


def random_flows(seed, count, clients=None):
    """`count` distinct flows: clients in 198.51.96.0/20 (or from `clients`), ports >= 1024."""
    rng = Rng(seed)
    flows, seen = [], set()
    while len(flows) < count:
        if clients:
            addr = clients[rng.below(len(clients))]
        else:
            n = rng.below(1 << 12)
            addr = f"198.51.{96 + (n >> 8)}.{(n & 0xFF) or 1}"
        port = 1024 + rng.below(65536 - 1024)
        if (addr, port) not in seen:
            seen.add((addr, port))
            flows.append((addr, port))
    return flows


def sequence_flows(first_port, count):
    return [("198.51.100.7", first_port + i) for i in range(count)]


# (name, ipvsadm -A options, [(real, weight, more ipvsadm -a options...)] in the order they
# are added, flows)
CASES = [
    ("sh", ["-s", "sh"], [("A", 1), ("B", 2), ("C", 3)], random_flows(1, 300)),
    ("sh-quiescent", ["-s", "sh"], [("A", 1), ("B", 0), ("C", 2), ("D", 1)], random_flows(2, 300)),
    ("sh-fallback", ["-s", "sh", "-b", "sh-fallback"], [("A", 1), ("B", 0), ("C", 2), ("D", 1)],
     random_flows(2, 300)),
    ("sh-port", ["-s", "sh", "-b", "sh-port"], [("A", 1), ("B", 1), ("C", 1)],
     random_flows(3, 300, ["198.51.100.7", "198.51.100.8"])),
    ("sh-port-fallback", ["-s", "sh", "-b", "sh-fallback,sh-port"],
     [("A", 2), ("B", 0), ("C", 1)], random_flows(4, 300, ["198.51.100.7", "198.51.100.8"])),
    ("dh", ["-s", "dh"], [("A", 1), ("B", 1), ("C", 1), ("D", 1)], random_flows(5, 40)),
    ("mh", ["-s", "mh"], [("A", 1), ("B", 1), ("C", 1), ("D", 1)], random_flows(6, 300)),
    ("mh-weights", ["-s", "mh"], [("A", 3), ("B", 2), ("C", 1)], random_flows(7, 300)),
    ("mh-quiescent", ["-s", "mh"], [("A", 1), ("B", 0), ("C", 2), ("D", 1)], random_flows(8, 300)),
    ("mh-fallback", ["-s", "mh", "-b", "mh-fallback"], [("A", 1), ("B", 0), ("C", 2), ("D", 1)],
     random_flows(8, 300)),
    ("mh-port", ["-s", "mh", "-b", "mh-port"], [("A", 1), ("B", 1), ("C", 1)],
     random_flows(9, 300, ["198.51.100.7", "198.51.100.8"])),
    ("rr", ["-s", "rr"], [("A", 1), ("B", 1), ("C", 1)], sequence_flows(1001, 12)),
    ("rr-quiescent", ["-s", "rr"], [("A", 1), ("B", 0), ("C", 1), ("D", 1)],
     sequence_flows(1101, 12)),
    ("wrr", ["-s", "wrr"], [("A", 3), ("B", 2), ("C", 1)], sequence_flows(2001, 24)),
    ("wrr-3-1", ["-s", "wrr"], [("A", 3), ("B", 1)], sequence_flows(2101, 14)),
    # The connection-count schedulers: no real server answers, so every SYN leaves a
    # connection in SYN_RECV, which IPVS counts as active (since 4.8) until it times out
    # (60 s, far longer than a case takes): each flow sees every earlier one as active.
    ("lc", ["-s", "lc"], [("A", 1), ("B", 1), ("C", 1)], sequence_flows(3001, 9)),
    ("lc-quiescent", ["-s", "lc"], [("A", 1), ("B", 0), ("C", 1)], sequence_flows(3101, 6)),
    ("wlc", ["-s", "wlc"], [("A", 3), ("B", 1)], sequence_flows(3201, 16)),
    ("wlc-3-2-1", ["-s", "wlc"], [("A", 3), ("B", 2), ("C", 1)], sequence_flows(3301, 18)),
    ("sed", ["-s", "sed"], [("A", 3), ("B", 2), ("C", 1)], sequence_flows(3401, 18)),
    ("nq", ["-s", "nq"], [("A", 3), ("B", 2), ("C", 1)], sequence_flows(3501, 18)),
    ("fo", ["-s", "fo"], [("A", 1), ("B", 3), ("C", 2)], sequence_flows(3601, 6)),
    ("fo-tie", ["-s", "fo"], [("A", 2), ("B", 2), ("C", 1)], sequence_flows(3651, 4)),
    ("ovf", ["-s", "ovf"], [("A", 2), ("B", 3), ("C", 1)], sequence_flows(3701, 11)),
    # Persistence: a client (-M: a client network) that has a template goes where it went;
    # only the others are scheduled, so rr advances once per new client (network).
    ("rr-persistent", ["-s", "rr", "-p", "60"], [("A", 1), ("B", 1), ("C", 1)],
     random_flows(10, 40, ["198.51.100.7", "198.51.100.8", "198.51.100.9", "198.51.101.7",
                           "198.51.101.8", "198.51.102.7", "198.51.102.9"])),
    ("rr-persistent-netmask", ["-s", "rr", "-p", "60", "-M", "255.255.255.0"],
     [("A", 1), ("B", 1), ("C", 1)],
     random_flows(11, 40, ["198.51.100.7", "198.51.100.8", "198.51.100.9", "198.51.101.7",
                           "198.51.101.8", "198.51.102.7", "198.51.102.9", "198.51.103.1"])),
    # Upper thresholds (-x): a real server with that many connections (active + inactive)
    # is overloaded and passed over until it has fewer (not reached here: nothing closes).
    ("rr-threshold", ["-s", "rr"], [("A", 1, "-x", "2"), ("B", 1), ("C", 1)],
     sequence_flows(4001, 10)),
    ("wlc-threshold", ["-s", "wlc"], [("A", 3, "-x", "4"), ("B", 1)], sequence_flows(4101, 10)),
    # One destination (the VIP) for every flow.
    ("lblc", ["-s", "lblc"], [("A", 2), ("B", 2)], sequence_flows(3801, 8)),
    ("lblcr", ["-s", "lblcr"], [("A", 2), ("B", 2)], sequence_flows(3901, 8)),
]


def run(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn(src, sport, dst, dport):
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
    csum = checksum(s + d + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, s, d)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def send(path):
    os.sched_setaffinity(0, {0})  # one CPU: the director sees them in this order
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    with open(path) as f:
        for line in f:
            addr, port = line.split()
            sock.sendto(syn(addr, int(port), VIP, PORT), (VIP, 0))
            time.sleep(0.002)


def record(index, name, options, reals, flows):
    d, c = f"d{index}", f"c{index}"
    run("ip", "netns", "add", d)
    run("ip", "netns", "add", c)
    ind = ["ip", "netns", "exec", d]
    inc = ["ip", "netns", "exec", c]
    run("ip", "link", "add", "c0", "netns", c, "type", "veth", "peer", "name", "d0", "netns", d)
    for cmd in [
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "set", "d0", "up"],
        ["ip", "addr", "add", f"{DIRECTOR_ADDR}/24", "dev", "d0"],
        ["ip", "addr", "add", f"{VIP}/32", "dev", "lo"],
        ["ip", "link", "add", "rs0", "type", "dummy"],
        ["ip", "link", "set", "rs0", "up"],
        ["ip", "addr", "add", "10.1.0.1/24", "dev", "rs0"],
        ["ip", "route", "add", "default", "via", CLIENT_NET_ADDR],
        ["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.d0.rp_filter=0"],
        ["ipvsadm", "-A", "-t", f"{VIP}:{PORT}", *options],
    ]:
        run(*ind, *cmd)
    for real, weight, *extra in reals:
        run(*ind, "ipvsadm", "-a", "-t", f"{VIP}:{PORT}", "-r", REALS[real], "-g", "-w", str(weight),
            *extra)
    for cmd in [
        ["ip", "link", "set", "lo", "up"],
        ["ip", "link", "set", "c0", "up"],
        ["ip", "addr", "add", f"{CLIENT_NET_ADDR}/24", "dev", "c0"],
    ]:
        run(*inc, *cmd)
    flow_file = f"/tmp/ipvs-sched-{name}.flows"
    with open(flow_file, "w") as f:
        for addr, port in flows:
            f.write(f"{addr} {port}\n")
    run(*inc, sys.executable, os.path.abspath(__file__), "send", flow_file)
    time.sleep(0.5)
    by_real = {v: k for k, v in REALS.items()}
    given = {}
    for line in run(*ind, "ipvsadm", "-Lnc").splitlines():
        words = line.split()
        if len(words) == 6 and words[0] == "TCP":
            addr, port = words[3].rsplit(":", 1)
            given[(addr, int(port))] = by_real[words[5].rsplit(":", 1)[0]]
    listing = run(*ind, "ipvsadm", "-Ln")
    for ns in (d, c):
        run("ip", "netns", "del", ns)
    out = [f"### CASE {name}",
           f"# kernel {os.uname().release}; ipvsadm -Ln after the flows:"]
    out += [f"#   {line}" for line in listing.splitlines()]
    out.append(f"service {' '.join(options)}")
    out += [" ".join(["real", real, str(weight), *extra]) for real, weight, *extra in reals]
    out += [f"flow {addr}:{port} {given.get((addr, port), 'none')}" for addr, port in flows]
    print("\n".join(out), flush=True)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "send":
        send(sys.argv[2])
        return
    subprocess.run(["modprobe", "ip_vs"], check=True)
    only = sys.argv[1:]
    for index, (name, options, reals, flows) in enumerate(CASES):
        if not only or name in only:
            record(index, name, options, reals, flows)
    print("### END", flush=True)


if __name__ == "__main__":
    main()
