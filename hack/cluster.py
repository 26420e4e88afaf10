"""A real one-node Kubernetes cluster on this machine, without Docker: ``build|up|down|status``.

Every part is real and local: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kubelet and kube-proxy (iptables mode) from the same pinned
Kubernetes build (hack/build-control-plane.sh); Debian's containerd with runc;
kube-router's network policy firewall (iptables + ipset) enforcing NetworkPolicies;
Debian's CNI plugins (bridge, host-local, portmap, loopback) on a bridge of our
own; CoreDNS (its Go module) serving ``cluster.local``; a hostPath provisioner
(hack/hostpath_provisioner.py) behind the default StorageClass; the images of
hack/images.py imported into containerd, so no pull ever leaves the machine.

Network rule of this workplace: pod and Service ranges exist only here
(pods 10.244.0.0/16 on bridge ``notifq0``, Services 10.96.0.0/16 routed onto
that bridge) and a mangle-table rule drops every forwarded packet that enters
from the bridge and would leave by any other interface: a pod reaches the node
and other pods, nothing beyond. The rule goes in before IP forwarding is
turned on and before any pod exists.

One cluster per machine (fixed bridge and addresses). State and logs live in
``$NOTIFQ_CLUSTER_DIR`` (default /var/lib/notifq-cluster); ``up`` prints the
``KUBECONFIG`` to use. This is a development tool, not part of the product.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import images
from testbed import free_port, front_proxy_flags, front_proxy_pki, wait_for

ROOT = Path(__file__).resolve().parent.parent
STATE = Path(os.environ.get("NOTIFQ_CLUSTER_DIR", "/var/lib/notifq-cluster"))
NODE_NAME = "notifq-node"
BRIDGE = "notifq0"
NODE_IP = "10.244.0.1"
POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
API_PORT = 6443
ISOLATION_CHAIN = "NOTIFQ-ISOLATE"
CNI_BIN = Path("/usr/lib/cni")
SYSCTLS = {
    "net.ipv4.ip_forward": "1",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
}
DAEMONS = (
    "etcd",
    "kube-apiserver",
    "containerd",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "kube-router",
    "coredns",
    "hostpath-provisioner",
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paths:
    """Where everything of one cluster lives."""

    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def containerd_sock(self) -> Path:
        return self.run / "containerd.sock"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"


# --- small helpers -------------------------------------------------------------


def sh(
    *argv: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(list(argv), input=input, capture_output=True, text=True, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr.strip()}")
    return out


def build_binaries() -> tuple[Path, Path]:
    """(control-plane bin dir, node bin dir), built once into the cache."""
    script = ROOT / "hack" / "build-control-plane.sh"
    cp = sh(str(script)).stdout.strip().splitlines()[-1]
    node = sh(str(script), "--node").stdout.strip().splitlines()[-1]
    return Path(cp), Path(node)


# --- daemons -------------------------------------------------------------------


def start_daemon(
    paths: Paths, name: str, argv: Sequence[str], env: dict[str, str] | None = None
) -> int:
    paths.logs.mkdir(parents=True, exist_ok=True)
    paths.run.mkdir(parents=True, exist_ok=True)
    with (paths.logs / f"{name}.log").open("ab") as logf:
        proc = subprocess.Popen(
            list(argv),
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    paths.pidfile(name).write_text(f"{proc.pid}\n{argv[0]}\n")
    log.info("started %s (pid %d)", name, proc.pid)
    return proc.pid


def daemon_pid(paths: Paths, name: str) -> int | None:
    """The recorded pid of ``name`` if that process is still the one we started."""
    try:
        pid_s, exe = paths.pidfile(name).read_text().splitlines()[:2]
    except (FileNotFoundError, ValueError):
        return None
    pid = int(pid_s)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return None
    if not cmdline or cmdline[0].decode(errors="replace") != exe:
        return None
    stat = Path(f"/proc/{pid}/stat").read_text()
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return None
    return pid


def stop_daemon(paths: Paths, name: str, timeout: float = 20) -> None:
    pid = daemon_pid(paths, name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: daemon_pid(paths, name) is None, timeout, f"{name} to stop", 0.2)
        if daemon_pid(paths, name) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_for(lambda: daemon_pid(paths, name) is None, 10, f"{name} to die", 0.2)
    paths.pidfile(name).unlink(missing_ok=True)


def expect_alive(paths: Paths, name: str) -> bool:
    """True while ``name`` runs; raises with the tail of its log once it has exited."""
    if daemon_pid(paths, name) is None:
        tail = (paths.logs / f"{name}.log").read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(f"{name} exited:\n" + "\n".join(tail))
    return True


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


# --- network -------------------------------------------------------------------


def _ipt(binary: str, *args: str) -> bool:
    return sh(binary, "-w", *args, check=False).returncode == 0


def network_up() -> None:
    """Bridge, routes and the isolation rule; IP forwarding only after the rule."""
    if sh("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
    if NODE_IP not in sh("ip", "-4", "addr", "show", BRIDGE).stdout:
        sh("ip", "addr", "add", f"{NODE_IP}/16", "dev", BRIDGE)
    sh("ip", "link", "set", BRIDGE, "up")
    # Service addresses never take the default route, even when no rule matches them
    sh("ip", "route", "replace", SERVICE_CIDR, "dev", BRIDGE)
    for binary in ("iptables", "ip6tables"):
        if not _ipt(binary, "-t", "mangle", "-L", ISOLATION_CHAIN, "-n"):
            sh(binary, "-w", "-t", "mangle", "-N", ISOLATION_CHAIN)
        sh(binary, "-w", "-t", "mangle", "-F", ISOLATION_CHAIN)
        sh(
            binary, "-w", "-t", "mangle", "-A", ISOLATION_CHAIN,
            "-i", BRIDGE, "!", "-o", BRIDGE,
            "-m", "comment", "--comment", "notifq: pods reach only this node",
            "-j", "DROP",
        )  # fmt: skip
        if not _ipt(binary, "-t", "mangle", "-C", "FORWARD", "-j", ISOLATION_CHAIN):
            sh(binary, "-w", "-t", "mangle", "-I", "FORWARD", "1", "-j", ISOLATION_CHAIN)
    for key, value in SYSCTLS.items():
        sh("sysctl", "-qw", f"{key}={value}")


def isolation_rule_packets() -> int:
    """Packets dropped so far by the isolation rule (IPv4)."""
    out = sh("iptables", "-w", "-t", "mangle", "-L", ISOLATION_CHAIN, "-n", "-v", "-x").stdout
    for line in out.splitlines():
        if "DROP" in line and BRIDGE in line:
            return int(line.split()[0])
    raise RuntimeError(f"isolation rule missing from mangle/{ISOLATION_CHAIN}:\n{out}")


def network_down(paths: Paths) -> None:
    saved = paths.root / "sysctl.saved"
    if saved.exists():
        for line in saved.read_text().splitlines():
            key, _, value = line.partition("=")
            sh("sysctl", "-qw", f"{key}={value}", check=False)
    sh("ip", "route", "del", SERVICE_CIDR, check=False)
    sh("ip", "link", "del", BRIDGE, check=False)
    for binary in ("iptables", "ip6tables"):
        while _ipt(binary, "-t", "mangle", "-D", "FORWARD", "-j", ISOLATION_CHAIN):
            pass
        _ipt(binary, "-t", "mangle", "-F", ISOLATION_CHAIN)
        _ipt(binary, "-t", "mangle", "-X", ISOLATION_CHAIN)


def save_sysctls(paths: Paths) -> None:
    saved = paths.root / "sysctl.saved"
    if not saved.exists():
        lines = [f"{k}={sh('sysctl', '-n', k).stdout.strip()}" for k in SYSCTLS]
        saved.write_text("\n".join(lines) + "\n")


# --- certificates and configuration ------------------------------------------------


def write_pki(paths: Paths) -> str:
    """A CA, the API server's serving certificate, the service-account keys; admin token."""
    pki = paths.pki
    pki.mkdir(parents=True, exist_ok=True)
    front_proxy_pki(pki / "front-proxy")
    if not (pki / "ca.crt").exists():
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
           "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"),
           "-subj", "/CN=notifq-cluster-ca")  # fmt: skip
        sans = ",".join(
            [
                f"IP:{NODE_IP}",
                f"IP:{API_SERVICE_IP}",
                "IP:127.0.0.1",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
                "DNS:localhost",
            ]
        )
        sh("openssl", "req", "-newkey", "rsa:2048", "-nodes",
           "-keyout", str(pki / "apiserver.key"), "-out", str(pki / "apiserver.csr"),
           "-subj", "/CN=kube-apiserver")  # fmt: skip
        ext = pki / "apiserver.ext"
        ext.write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth\n")
        sh("openssl", "x509", "-req", "-in", str(pki / "apiserver.csr"), "-days", "3650",
           "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"), "-CAcreateserial",
           "-extfile", str(ext), "-out", str(pki / "apiserver.crt"))  # fmt: skip
        sh("openssl", "genrsa", "-out", str(pki / "sa.key"), "2048")
        sh("openssl", "rsa", "-in", str(pki / "sa.key"), "-pubout", "-out", str(pki / "sa.pub"))
        token = os.urandom(16).hex()
        (pki / "tokens.csv").write_text(f'{token},admin,admin-uid,"system:masters"\n')
    token = (pki / "tokens.csv").read_text().split(",", 1)[0]
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "notifq",
                "cluster": {
                    "server": f"https://{NODE_IP}:{API_PORT}",
                    "certificate-authority": str(pki / "ca.crt"),
                },
            }
        ],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [
            {
                "name": "notifq",
                "context": {"cluster": "notifq", "user": "admin", "namespace": "default"},
            }
        ],
        "current-context": "notifq",
    }
    paths.kubeconfig.write_text(json.dumps(cfg, indent=2))
    paths.kubeconfig.chmod(0o600)
    return token


def containerd_config(paths: Paths) -> Path:
    cfg = paths.root / "containerd.toml"
    cfg.write_text(
        f"""version = 2
root = "{paths.root / "containerd"}"
state = "{paths.run / "containerd"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "{paths.containerd_sock}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/{images.PAUSE_IMAGE}"
  # the process lacks CAP_SYS_RESOURCE: runc cannot set negative OOM scores
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{paths.root / "cni"}"
"""
    )
    cni = paths.root / "cni"
    cni.mkdir(exist_ok=True)
    conflist = {
        "cniVersion": "0.4.0",
        "name": "notifq",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(paths.root / "cni-ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    (cni / "10-notifq.conflist").write_text(json.dumps(conflist, indent=2))
    return cfg


def kubelet_config(paths: Paths) -> Path:
    resolv = paths.root / "resolv.conf"
    resolv.write_text("")  # pods resolve through cluster DNS only
    cfg = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": NODE_IP,
        "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": "cluster.local",
        "resolvConf": str(resolv),
        "containerRuntimeEndpoint": f"unix://{paths.containerd_sock}",
        "podCIDR": POD_CIDR,
        "serializeImagePulls": False,
        "imageGCHighThresholdPercent": 100,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "protectKernelDefaults": False,
        "maxPods": 110,
    }
    path = paths.root / "kubelet.yaml"
    path.write_text(json.dumps(cfg, indent=2))
    return path


def kube_proxy_config(paths: Paths) -> Path:
    cfg = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(paths.kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": NODE_IP,
        "healthzBindAddress": f"{NODE_IP}:10256",
        "metricsBindAddress": f"{NODE_IP}:10249",
        "clusterCIDR": POD_CIDR,
        "nodePortAddresses": [f"{NODE_IP}/32"],
        # leave the machine's conntrack sysctls alone
        "conntrack": {"maxPerCore": 0, "min": 0},
    }
    path = paths.root / "kube-proxy.yaml"
    path.write_text(json.dumps(cfg, indent=2))
    return path


def corefile(paths: Paths) -> Path:
    path = paths.root / "Corefile"
    # Only cluster.local is served; with no `forward`, no query ever leaves the node.
    path.write_text(
        f"""cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {NODE_IP}
    errors
    health {NODE_IP}:8081
    ready {NODE_IP}:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {paths.kubeconfig} notifq
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 5
}}
"""
    )
    return path


def bootstrap_manifests() -> str:
    """kube-dns (CoreDNS runs on the node, behind a selector-less Service) and storage."""
    objs = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kube-dns",
                "namespace": "kube-system",
                "labels": {"k8s-app": "kube-dns"},
            },
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "ports": [
                    {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                    {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                ],
            },
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-node",
                "namespace": "kube-system",
                "labels": {
                    "kubernetes.io/service-name": "kube-dns",
                    "endpointslice.kubernetes.io/managed-by": "notifq-cluster",
                },
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": [NODE_IP], "conditions": {"ready": True}, "nodeName": NODE_NAME}
            ],
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            ],
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                "name": "local-path",
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": "notifq.dev/hostpath",
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        },
    ]
    return "\n---\n".join(json.dumps(o) for o in objs)


# --- the cluster -----------------------------------------------------------------


@dataclass
class Cluster:
    paths: Paths
    cp_bin: Path
    node_bin: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return sh(
            str(self.cp_bin / "kubectl"),
            f"--kubeconfig={self.paths.kubeconfig}",
            *args,
            input=input,
            check=check,
        )

    @property
    def ctr(self) -> list[str]:
        return ["ctr", "--address", str(self.paths.containerd_sock)]

    def _api_ready(self, token: str) -> bool:
        ctx = ssl.create_default_context(cafile=str(self.paths.pki / "ca.crt"))
        conn = http.client.HTTPSConnection(NODE_IP, API_PORT, context=ctx, timeout=2)
        try:
            conn.request("GET", "/readyz", headers={"Authorization": f"Bearer {token}"})
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def up(self) -> None:
        p = self.paths
        p.root.mkdir(parents=True, exist_ok=True)
        save_sysctls(p)
        network_up()
        token = write_pki(p)
        kubeconfig = str(p.kubeconfig)
        etcd_port, etcd_peer = free_port(), free_port()
        start_daemon(p, "etcd", [
            str(self.cp_bin / "etcd"), "--data-dir", str(p.root / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync=true", "--log-level=warn", "--quota-backend-bytes=4294967296",
        ])  # fmt: skip
        start_daemon(p, "kube-apiserver", [
            str(self.cp_bin / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            f"--bind-address={NODE_IP}", f"--advertise-address={NODE_IP}",
            f"--secure-port={API_PORT}", f"--tls-cert-file={p.pki / 'apiserver.crt'}",
            f"--tls-private-key-file={p.pki / 'apiserver.key'}",
            f"--client-ca-file={p.pki / 'ca.crt'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={p.pki / 'sa.pub'}",
            f"--service-account-signing-key-file={p.pki / 'sa.key'}",
            f"--token-auth-file={p.pki / 'tokens.csv'}",
            # the aggregation layer (the chart's reports.notifq.dev APIService)
            *front_proxy_flags(p.pki / "front-proxy"), "--enable-aggregator-routing=true",
            "--allow-privileged=true", "--v=0",
            # reach the kubelet at the node's address, never by a name the host must resolve
            "--kubelet-preferred-address-types=InternalIP",
        ])  # fmt: skip
        wait_for(
            lambda: expect_alive(p, "kube-apiserver") and self._api_ready(token),
            180,
            "kube-apiserver /readyz",
        )
        # Every image is imported; should a pull slip through anyway, it goes to a
        # closed local port (the registry mirrors fall back to the default hosts).
        no_pull = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9"}
        start_daemon(
            p,
            "containerd",
            ["/usr/bin/containerd", "--config", str(containerd_config(p))],
            env={
                **{k: v for k, v in os.environ.items() if "proxy" not in k.lower()},
                **no_pull,
            },
        )
        wait_for(
            lambda: (
                expect_alive(p, "containerd")
                and sh(*self.ctr, "version", check=False).returncode == 0
            ),
            60,
            "containerd",
        )
        images.import_all(self.images(), self.ctr, p.root / "containerd" / "notifq-imported")
        start_daemon(p, "kube-controller-manager", [
            str(self.node_bin / "kube-controller-manager"), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false", f"--bind-address={NODE_IP}",
            f"--root-ca-file={p.pki / 'ca.crt'}",
            f"--service-account-private-key-file={p.pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", f"--cluster-cidr={POD_CIDR}",
            "--allocate-node-cidrs=false", "--use-service-account-credentials=false",
            "--controllers=*", "--v=1",
        ])  # fmt: skip
        start_daemon(p, "kube-scheduler", [
            str(self.node_bin / "kube-scheduler"), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false", f"--bind-address={NODE_IP}", "--v=1",
        ])  # fmt: skip
        start_daemon(p, "kubelet", [
            str(self.node_bin / "kubelet"), f"--kubeconfig={kubeconfig}",
            f"--config={kubelet_config(p)}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
            f"--root-dir={p.root / 'kubelet'}", f"--cert-dir={p.root / 'kubelet-pki'}", "--v=1",
        ])  # fmt: skip
        start_daemon(p, "kube-proxy", [
            str(self.node_bin / "kube-proxy"), f"--config={kube_proxy_config(p)}", "--v=1",
        ])  # fmt: skip
        start_daemon(p, "coredns", [str(self.node_bin / "coredns"), "-conf", str(corefile(p))])
        p.volumes.mkdir(parents=True, exist_ok=True)
        start_daemon(
            p,
            "hostpath-provisioner",
            [
                sys.executable,
                str(ROOT / "hack" / "hostpath_provisioner.py"),
                "--dir",
                str(p.volumes),
            ],
            env={**os.environ, "KUBECONFIG": kubeconfig},
        )
        wait_for(
            lambda: (
                self.kubectl(
                    "apply", "-f", "-", input=bootstrap_manifests(), check=False
                ).returncode
                == 0
            ),
            60,
            "bootstrap objects (kube-dns, StorageClass)",
        )
        wait_for(
            lambda: self._all_alive(but=("kube-router",)) and self.node_ready(),
            180,
            f"node {NODE_NAME} Ready",
            1,
        )
        # NetworkPolicy enforcement (the bridge plugin has none), once the Node exists:
        # kube-router's firewall alone, on iptables + ipset (routing, CNI and Service
        # proxying stay with the parts above)
        health_port = free_port()
        start_daemon(p, "kube-router", [
            str(self.node_bin / "kube-router"), f"--kubeconfig={kubeconfig}",
            "--run-firewall=true", "--run-router=false", "--run-service-proxy=false",
            "--enable-cni=false", "--enable-ipv6=false", f"--hostname-override={NODE_NAME}",
            f"--service-cluster-ip-range={SERVICE_CIDR}", f"--health-port={health_port}",
            "--metrics-port=0", "--v=1",
        ])  # fmt: skip
        wait_for(
            lambda: self._all_alive() and _healthy(f"http://127.0.0.1:{health_port}/healthz"),
            60,
            "kube-router's network policy controller",
            1,
        )
        wait_for(
            lambda: (
                self.kubectl(
                    "get", "serviceaccount", "default", "-n", "default", check=False
                ).returncode
                == 0
            ),
            60,
            "the default ServiceAccount",
        )
        # cluster DNS answers only once CoreDNS has read the Services and Endpoints (its
        # ready plugin); before that a pod's first lookup fails ("Temporary failure in name
        # resolution": a cluster test saw it on a loaded machine right after `up`)
        wait_for(
            lambda: self._all_alive() and _healthy(f"http://{NODE_IP}:8181/ready"),
            120,
            "CoreDNS ready (Services and Endpoints read)",
            0.5,
        )

    def images(self) -> list[images.Built]:
        return images.build_all(self.node_bin / "pause")

    def _all_alive(self, but: tuple[str, ...] = ()) -> bool:
        for name in DAEMONS:
            if name not in but:
                expect_alive(self.paths, name)
        return True

    def node_ready(self) -> bool:
        out = self.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
        if out.returncode != 0:
            return False
        conds = json.loads(out.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

    def down(self, purge: bool = True, purge_images: bool = False) -> None:
        p = self.paths
        for name in (
            "hostpath-provisioner",
            "coredns",
            "kubelet",
            "kube-proxy",
            "kube-router",
            "kube-scheduler",
            "kube-controller-manager",
        ):
            stop_daemon(p, name)
        if daemon_pid(p, "containerd") is not None:
            self._remove_containers()
        stop_daemon(p, "containerd")
        stop_daemon(p, "kube-apiserver")
        stop_daemon(p, "etcd")
        if (self.node_bin / "kube-proxy").exists():
            sh(str(self.node_bin / "kube-proxy"), "--cleanup", check=False)
        if (self.node_bin / "kube-router").exists():
            sh(str(self.node_bin / "kube-router"), "--cleanup-config", check=False)
        self._unmount()
        for ns in sh("ip", "netns", "list", check=False).stdout.split("\n"):
            name = ns.split(" ")[0]
            if name.startswith("cni-"):
                sh("ip", "netns", "delete", name, check=False)
        network_down(p)
        if purge and p.root.exists():
            for child in p.root.iterdir():
                if child.name == "containerd" and not purge_images:
                    continue  # the imported images: the next `up` skips importing them
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink()

    def _remove_containers(self) -> None:
        ctr = [*self.ctr, "-n", "k8s.io"]
        for task in sh(*ctr, "tasks", "ls", "-q", check=False).stdout.split():
            sh(*ctr, "tasks", "kill", "-a", "-s", "SIGKILL", task, check=False)
        for task in sh(*ctr, "tasks", "ls", "-q", check=False).stdout.split():
            with contextlib.suppress(TimeoutError):
                wait_for(
                    lambda t=task: sh(*ctr, "tasks", "rm", "-f", t, check=False).returncode == 0,
                    10,
                    f"task {task} to go",
                )
        for container in sh(*ctr, "containers", "ls", "-q", check=False).stdout.split():
            sh(*ctr, "containers", "rm", container, check=False)

    def _unmount(self) -> None:
        root = str(self.paths.root)
        mounts = [
            line.split()[1]
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(root) or line.split()[1].startswith("/run/netns/cni-")
        ]
        for target in sorted(mounts, key=len, reverse=True):
            sh("umount", "-l", target, check=False)

    def status(self) -> int:
        bad = 0
        for name in DAEMONS:
            pid = daemon_pid(self.paths, name)
            sys.stdout.write(f"{name:24} {'running pid ' + str(pid) if pid else 'stopped'}\n")
            bad += pid is None
        if not bad:
            sys.stdout.write(self.kubectl("get", "nodes", "-o", "wide", check=False).stdout)
        sys.stdout.write(f"export KUBECONFIG={self.paths.kubeconfig}\n")
        return 1 if bad else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "up", "down", "status"])
    parser.add_argument("--keep", action="store_true", help="down: keep the state directory")
    parser.add_argument(
        "--images", action="store_true", help="down: also remove the runtime's imported images"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[cluster] %(message)s")
    if os.geteuid() != 0:
        parser.error("a node needs root (namespaces, cgroups, iptables)")
    paths = Paths(STATE)
    if args.command == "status":
        cp_bin, node_bin = build_binaries()
        return Cluster(paths, cp_bin, node_bin).status()
    # apt packages (containerd, runc, CNI plugins, buildah, ...), .venv, control plane
    subprocess.run([str(ROOT / "hack" / "setup.sh")], check=True, stdout=subprocess.DEVNULL)
    cp_bin, node_bin = build_binaries()
    cluster = Cluster(paths, cp_bin, node_bin)
    if args.command == "down":
        cluster.down(purge=not args.keep, purge_images=args.images)
        return 0
    if args.command == "build":  # binaries and images only (make test-cluster does it first)
        cluster.images()
        return 0
    cluster.down()
    try:
        cluster.up()
    except Exception:
        log.error("cluster did not come up; logs in %s", paths.logs)
        raise
    sys.stdout.write(f"export KUBECONFIG={paths.kubeconfig}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
