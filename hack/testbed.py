"""The local test bed: private Postgres, Redis, etcd and kube-apiserver processes.

Everything runs as plain local processes on loopback, in a directory of its own,
on free ports, so a test run never touches anything else on the machine and can
kill or restart any part of it (the fault tests do). Used by the pytest fixtures
(tests/conftest.py), ``make demo`` (hack/demo.py) and ``make bench``.

This is a development tool, not part of the product.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})")


def control_plane_bin() -> Path:
    """Directory holding etcd, kube-apiserver, kubectl and helm (built on first use)."""
    out = subprocess.run(
        [str(ROOT / "hack" / "build-control-plane.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass
class Proc:
    """A child process whose output goes to a log file."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    cwd: Path | None = None
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            list(self.argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.alive():
            assert self.popen is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int | None:
        if self.popen is None:
            return None
        if self.alive():
            self.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                self.popen.wait(10)
        return self.popen.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL, timeout=10)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def _as_postgres_user() -> tuple[list[str], int | None, int | None]:
    """Postgres refuses to run as root: run it as the 'postgres' system user then."""
    if os.geteuid() != 0:
        return [], None, None
    pw = pwd.getpwnam("postgres")
    return ["runuser", "-u", "postgres", "--"], pw.pw_uid, pw.pw_gid


@dataclass
class Postgres:
    """A private PostgreSQL cluster on a free port (trust auth on loopback)."""

    workdir: Path
    durable: bool = False
    port: int = field(default_factory=free_port)
    user: str = "notifq"
    proc: Proc | None = None

    @property
    def datadir(self) -> Path:
        return self.workdir / "pgdata"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _bin(self, name: str) -> str:
        for d in PG_BIN_CANDIDATES:
            if (d / name).exists():
                return str(d / name)
        raise FileNotFoundError(f"{name} not found: run hack/setup.sh (apt package postgresql)")

    def start(self) -> Postgres:
        prefix, uid, gid = _as_postgres_user()
        self.workdir.mkdir(parents=True, exist_ok=True)
        sock = self.workdir / "pgsock"
        sock.mkdir(exist_ok=True)
        if uid is not None:
            # the postgres user must be able to reach its directory
            for parent in self.workdir.parents:
                st = parent.stat()
                if st.st_uid == os.geteuid() and not st.st_mode & 0o001:
                    parent.chmod(st.st_mode | 0o011)
            os.chown(self.workdir, uid, gid or -1)
            os.chown(sock, uid, gid or -1)
        if not (self.datadir / "PG_VERSION").exists():
            init = subprocess.run(
                [
                    *prefix,
                    self._bin("initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--locale=C.UTF-8",
                ],
                check=False,
                capture_output=True,
            )
            if init.returncode != 0:
                raise RuntimeError(
                    f"initdb of {self.datadir} failed ({init.returncode}): "
                    f"{init.stderr.decode(errors='replace')[-2000:]}"
                )
        opts = [
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={sock}",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=256MB",
            "-c",
            "log_min_messages=warning",
        ]
        if not self.durable:
            opts += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        self.proc = Proc(
            "postgres",
            [*prefix, self._bin("postgres"), "-D", str(self.datadir), "-p", str(self.port), *opts],
            self.workdir / "postgres.log",
        ).start()
        wait_for(self._ready, 60, "postgres")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise RuntimeError("postgres exited:\n" + self.proc.tail())
        import psycopg

        with psycopg.connect(self.url(), connect_timeout=2):
            return True

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, fast: bool = True) -> None:
        if self.proc is None or not self.proc.alive():
            return
        # runuser does not forward signals to postgres: ask pg_ctl (as the same user)
        prefix, _, _ = _as_postgres_user()
        subprocess.run(
            [
                *prefix,
                self._bin("pg_ctl"),
                "-D",
                str(self.datadir),
                "-m",
                "fast" if fast else "smart",
                "-w",
                "-t",
                "30",
                "stop",
            ],
            check=False,
            capture_output=True,
            timeout=60,
        )
        self.proc.stop(signal.SIGTERM, timeout=30)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop()
        time.sleep(down_seconds)
        self.start()


@dataclass
class Redis:
    """A private redis-server on a free port, without persistence."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Redis:
        self.workdir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = Proc(
            "redis",
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "no",
            ],
            self.workdir / "redis.log",
        ).start()
        wait_for(self._ready, 30, "redis")
        return self

    def _ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(signal.SIGTERM, timeout=15)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop and start again: with persistence off, every key is gone."""
        if self.proc is not None:
            self.proc.kill()
        time.sleep(down_seconds)
        self.start()


@dataclass
class ControlPlane:
    """etcd + kube-apiserver with RBAC, a token authenticator and a kubeconfig."""

    workdir: Path
    bindir: Path = field(default_factory=control_plane_bin)
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    port: int = field(default_factory=free_port)
    admin_token: str = field(default_factory=lambda: os.urandom(16).hex())
    """token -> (user name, comma-separated groups); e.g. a ServiceAccount identity."""
    etcd: Proc | None = None
    apiserver: Proc | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> ControlPlane:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._keys()
        self.etcd = Proc(
            "etcd",
            [
                str(self.bindir / "etcd"),
                "--data-dir",
                str(self.workdir / "etcd"),
                "--listen-client-urls",
                f"http://127.0.0.1:{self.etcd_port}",
                "--advertise-client-urls",
                f"http://127.0.0.1:{self.etcd_port}",
                "--listen-peer-urls",
                f"http://127.0.0.1:{self.etcd_peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{self.etcd_peer_port}",
                "--initial-cluster",
                f"default=http://127.0.0.1:{self.etcd_peer_port}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
                "--quota-backend-bytes=4294967296",
            ],
            self.workdir / "etcd.log",
        ).start()
        wait_for(self._etcd_ok, 60, "etcd")
        self.start_apiserver()
        self._write_kubeconfig()
        return self

    def start_apiserver(self) -> None:
        self._write_tokens()
        self.apiserver = Proc(
            "kube-apiserver",
            [
                str(self.bindir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                f"--cert-dir={self.workdir / 'certs'}",
                f"--secure-port={self.port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={self.workdir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}",
                *front_proxy_flags(self.workdir / "front-proxy"),
                # No kube-proxy here: the aggregator dials an APIService's endpoints directly.
                "--enable-aggregator-routing=true",
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--v=0",
            ],
            self.workdir / "kube-apiserver.log",
        ).start()
        wait_for(self._ready, 120, "kube-apiserver /readyz", interval=0.25)

    def stop_apiserver(self) -> None:
        if self.apiserver is not None:
            self.apiserver.stop(signal.SIGTERM, timeout=30)

    def restart_apiserver(self, down_seconds: float = 0.0) -> None:
        self.stop_apiserver()
        time.sleep(down_seconds)
        self.start_apiserver()

    def stop(self) -> None:
        self.stop_apiserver()
        if self.etcd is not None:
            self.etcd.stop(signal.SIGTERM, timeout=30)

    @contextlib.contextmanager
    def aggregated_api(self, group: str, version: str, port: int) -> Iterator[None]:
        """Route ``/apis/<group>/<version>`` to a server on this machine's ``port`` (an
        APIService with a Service and its endpoints, as a cluster would have for a pod), and
        remove it again: an APIService left unavailable stalls namespace deletion."""
        ip = host_ip()
        name = f"{version}.{group}"
        svc = "aggregated-" + group.replace(".", "-")
        objects = [
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": svc, "namespace": "default"},
             "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}},
            {"apiVersion": "v1", "kind": "Endpoints",
             "metadata": {"name": svc, "namespace": "default"},
             "subsets": [{"addresses": [{"ip": ip}],
                          "ports": [{"name": "https", "port": port}]}]},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": svc, "namespace": "default",
                          "labels": {"kubernetes.io/service-name": svc}},
             "addressType": "IPv4",
             "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
             "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
            {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
             "metadata": {"name": name},
             "spec": {"group": group, "version": version, "insecureSkipTLSVerify": True,
                      "groupPriorityMinimum": 1000, "versionPriority": 15,
                      "service": {"name": svc, "namespace": "default", "port": 443}}},
        ]  # fmt: skip
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                            "items": objects}))  # fmt: skip
        try:
            self.kubectl("wait", f"apiservice/{name}", "--for=condition=Available",
                         "--timeout=60s")  # fmt: skip
            yield
        finally:
            self.kubectl("delete", f"apiservice/{name}", "--wait=true")
            self.kubectl("delete", "-n", "default", f"service/{svc}", f"endpoints/{svc}",
                         f"endpointslice/{svc}", "--ignore-not-found")  # fmt: skip

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, token: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.bindir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args]
        if token is not None:
            argv.insert(2, f"--token={token}")
        return subprocess.run(
            argv, input=input, capture_output=True, text=True, check=check, timeout=120
        )

    # internals -------------------------------------------------------------
    def _keys(self) -> None:
        front_proxy_pki(self.workdir / "front-proxy")
        key = self.workdir / "sa.key"
        if not key.exists():
            subprocess.run(
                ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
            )
            subprocess.run(
                [
                    "openssl",
                    "rsa",
                    "-in",
                    str(key),
                    "-pubout",
                    "-out",
                    str(self.workdir / "sa.pub"),
                ],
                check=True,
                capture_output=True,
            )

    def _write_tokens(self) -> None:
        line = f'{self.admin_token},admin,admin-uid,"system:masters"\n'
        (self.workdir / "tokens.csv").write_text(line)

    def _write_kubeconfig(self) -> None:
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "notifq-testbed",
                    "cluster": {"server": self.server, "insecure-skip-tls-verify": True},
                }
            ],
            "users": [{"name": "admin", "user": {"token": self.admin_token}}],
            "contexts": [
                {
                    "name": "notifq-testbed",
                    "context": {
                        "cluster": "notifq-testbed",
                        "user": "admin",
                        "namespace": "default",
                    },
                }
            ],
            "current-context": "notifq-testbed",
        }
        self.kubeconfig.write_text(json.dumps(cfg, indent=2))

    def _ready(self) -> bool:
        if self.apiserver is not None and not self.apiserver.alive():
            raise RuntimeError("kube-apiserver exited:\n" + self.apiserver.tail())
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=2)
        try:
            conn.request("GET", "/readyz", headers={"Authorization": f"Bearer {self.admin_token}"})
            return conn.getresponse().status == 200
        finally:
            conn.close()

    def _etcd_ok(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.etcd_port, timeout=2)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        finally:
            conn.close()


def host_ip() -> str:
    """This machine's address on its default route (endpoints may not be loopback)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("203.0.113.1", 9))  # no packet is sent: this only picks a route
            return str(s.getsockname()[0])
    except OSError:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=True)
        return next(a for a in out.stdout.split() if "." in a and not a.startswith("127."))


FRONT_PROXY_CLIENT = "front-proxy-client"


def front_proxy_pki(pki: Path) -> None:
    """The aggregation layer's own CA and the client certificate the API server presents to
    aggregated API servers (kept apart from every other CA, as Kubernetes advises)."""
    if (pki / "client.crt").exists():
        return
    pki.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            "-keyout", str(pki / "ca.key"), "-out", str(pki / "ca.crt"),
            "-subj", "/CN=notifq-front-proxy-ca")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(pki / "client.key"),
            "-out", str(pki / "client.csr"), "-subj", f"/CN={FRONT_PROXY_CLIENT}")  # fmt: skip
    openssl("x509", "-req", "-in", str(pki / "client.csr"), "-days", "3650",
            "-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"), "-CAcreateserial",
            "-out", str(pki / "client.crt"))  # fmt: skip


def front_proxy_flags(pki: Path) -> list[str]:
    """kube-apiserver flags that turn on the aggregation layer with ``front_proxy_pki``."""
    return [
        f"--requestheader-client-ca-file={pki / 'ca.crt'}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki / 'client.crt'}",
        f"--proxy-client-key-file={pki / 'client.key'}",
    ]


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM (blocked first, so the cleanup that follows runs)."""
    sigs = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    signal.sigwait(sigs)


def notifq_env(cp: ControlPlane, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """Environment for notifq processes run against this test bed."""
    return {
        **os.environ,
        "KUBECONFIG": str(cp.kubeconfig),
        "NOTIFQ_DATABASE_URL": database_url,
        "NOTIFQ_REDIS_URL": redis_url,
        "NOTIFQ_ENVIRONMENT": "development",
        "NOTIFQ_METRICS_PORT": "0",
        **extra,
    }


class Services:
    """The services notifq needs, started together: Postgres with a migrated database,
    Redis, and etcd + kube-apiserver with the Campaign CRD served.

    ``with Services(dir) as sv:`` starts them (in that order) and stops them in reverse,
    also when starting fails half-way. The tests start the same pieces once per session
    (tests/conftest.py) and share them; tools start their own.
    """

    def __init__(self, workdir: Path, *, durable: bool = False, database: str = "notifq") -> None:
        self.workdir = workdir
        self.postgres = Postgres(workdir / "postgres", durable=durable)
        self.redis = Redis(workdir / "redis")
        self.control_plane = ControlPlane(workdir / "k8s")
        self.database = database
        self.database_url = ""
        self._started: list[Postgres | Redis | ControlPlane] = []

    def __enter__(self) -> Services:
        try:
            self._started.append(self.postgres.start())
            self.database_url = self.postgres.create_database(self.database)
            migrate(self.database_url)
            self._started.append(self.redis.start())
            self._started.append(self.control_plane.start())
            apply_crds(self.control_plane)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        while self._started:
            self._started.pop().stop()

    def env(self, **extra: str) -> dict[str, str]:
        """Environment of a notifq process run against these services."""
        return notifq_env(self.control_plane, self.database_url, self.redis.url, **extra)


def migrate(database_url: str) -> None:
    """Bring the database schema to the newest migration."""
    from notifq.core.migrate import upgrade

    upgrade(database_url)


def apply_crds(cp: ControlPlane) -> None:
    """Apply the project's CRDs and wait until Campaigns are served."""
    cp.kubectl("apply", "-f", str(ROOT / "crds"))
    wait_for(
        lambda: cp.kubectl("get", "campaigns", "-A", check=False).returncode == 0,
        60,
        "the Campaign CRD to be served",
    )


class Stack:
    """notifq's own processes (operator, workers, API, local runner) against the services.

    ``with Stack(workdir, env, cp) as stack:`` stops every process it started on exit
    (SIGTERM, then a bounded wait), so the demo, the benchmarks and the tests start and
    stop the local system the same way.
    """

    def __init__(
        self, workdir: Path, env: dict[str, str], control_plane: ControlPlane, database_url: str
    ) -> None:
        self.workdir = workdir
        self.env = env
        self.control_plane = control_plane
        self.database_url = database_url
        self.operator: Proc | None = None
        self.workers: list[Proc] = []
        self.others: list[Proc] = []
        self._n = 0

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _proc(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        self._n += 1
        label = f"{name}-{self._n}"
        return Proc(label, argv, self.workdir / f"{label}.log", env=env).start()

    def start_operator(self, **env: str) -> Proc:
        self.operator = self._proc(
            "operator",
            [sys.executable, "-m", "notifq.operator.main", "--liveness", ""],
            {**self.env, **env},
        )
        return self.operator

    def start_worker(self, **env: str) -> Proc:
        proc = self._proc(
            "worker", [sys.executable, "-m", "notifq.worker.main"], {**self.env, **env}
        )
        self.workers.append(proc)
        return proc

    def start_api(self, port: int, **env: str) -> Proc:
        argv = [sys.executable, "-m", "notifq.api.main", "serve", "--host", "127.0.0.1"]
        proc = self._proc("api", argv, {**self.env, "NOTIFQ_API_PORT": str(port), **env})
        self.others.append(proc)
        return proc

    def start_local_runner(self, logs: Path, **env: str) -> Proc:
        """hack/local_runner.py: worker processes for labelled Deployments (no kubelet here)."""
        kubectl = str(self.control_plane.bindir / "kubectl")
        argv = [sys.executable, str(ROOT / "hack" / "local_runner.py"), "--logs", str(logs)]
        proc = self._proc("local-runner", argv, {**self.env, "KUBECTL": kubectl, **env})
        self.others.append(proc)
        return proc

    def processes(self) -> list[Proc]:
        return [*self.others, *self.workers, *([self.operator] if self.operator else [])]

    def stop(self) -> None:
        procs = self.processes()
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.stop(signal.SIGTERM, timeout=30)


def main(argv: list[str]) -> int:
    """``python hack/testbed.py up DIR``: start everything, print env, wait for Ctrl-C."""
    if len(argv) != 2 or argv[0] != "up":
        print("usage: testbed.py up DIR", file=sys.stderr)
        return 2
    workdir = Path(argv[1]).resolve()
    pg = Postgres(workdir / "postgres").start()
    url = pg.create_database("notifq")
    redis = Redis(workdir / "redis").start()
    cp = ControlPlane(workdir / "k8s").start()
    print(f"export KUBECONFIG={cp.kubeconfig}")
    print(f"export NOTIFQ_DATABASE_URL={url}")
    print(f"export NOTIFQ_REDIS_URL={redis.url}", flush=True)
    try:
        wait_for_signal()
    finally:
        cp.stop()
        redis.stop()
        pg.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
