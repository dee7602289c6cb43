"""nginx, Debian's, as the HTTP server of the remote-image tests: started
by the test on a free port of 127.0.0.1 as a plain process
(`nginx -p DIR -c CONF -e LOG -g 'daemon off;'`), every path it writes (pid
file, logs, temporary directories) under DIR, optionally over HTTPS (and
HTTP/2) with a certificate signed by a test CA made with openssl.

It serves the files of one directory with nginx's own byte ranges, ETags
(size and modification time) and keep-alive.  Every request is written to
an access log in a format of our own, one line per request:

    METHOD URI "RANGE HEADER" STATUS BODY_BYTES_SENT "CONTENT-RANGE SENT"

so that the tests count requests and bytes as the server logs them
(requests(), count(), bytes_served()).

Faults come from nginx's configuration: stop() (connections refused),
fault(status=500) (every request answered with that status), fault(rate=
"1k") (limit_rate: a slow body); a truncated or rewritten file is done on
the served file itself.  A change of fault rewrites the configuration and
restarts nginx on the same port (not `nginx -s reload`, whose old workers
go on serving the open keep-alive connections with the old configuration
for a while: a test would race them).

Faults nginx cannot produce (a connection reset in the middle of a body, a
fault for exactly one request) stay with tests/range_server.py.

stop() kills the master by its pid file and waits for it; every server
still running when the Python process exits is killed too (atexit), so a
failing test leaves no nginx behind.
"""
import atexit
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

LOG_FORMAT = r'$request_method $uri "$http_range" $status $body_bytes_sent "$sent_http_content_range"'
LINE = re.compile(r'^(\S+) (\S+) "([^"]*)" (\d+) (\d+) "([^"]*)"$')

_running = set()


def free_port():
    """A free port below the ephemeral range: while nginx is stopped, no
    client socket (veneer's own, connecting to it) can take its port, so a
    restart on the same port finds it free."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = max(low, 2048)
    for _ in range(100):
        port = random.randrange(max(1024, top - 12000), top)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below " + str(top))


class NginxServer:
    def __init__(self, root, workdir, certfile=None, keyfile=None, http2=True):
        self.root = os.path.abspath(root)
        self.dir = os.path.abspath(workdir)
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        self.certfile, self.keyfile, self.http2 = certfile, keyfile, http2
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.pidfile = os.path.join(self.dir, "nginx.pid")
        self.access_log = os.path.join(self.dir, "access.log")
        self.error_log = os.path.join(self.dir, "error.log")
        self.status = None          # fault: answer every request with this status
        self.rate = None            # fault: limit_rate, e.g. "1k"
        self.port = None
        self.proc = None
        open(self.access_log, "a").close()
        self.start()

    # ---- configuration ----

    def config(self):
        d = self.dir
        user = "user root root;\n" if os.geteuid() == 0 else ""
        ssl = ""
        listen = f"127.0.0.1:{self.port}"
        if self.certfile:
            listen += " ssl" + (" http2" if self.http2 else "")
            ssl = (f"        ssl_certificate {self.certfile};\n"
                   f"        ssl_certificate_key {self.keyfile};\n")
        fault = ""
        if self.status:
            fault += f"            return {self.status};\n"
        if self.rate:
            fault += f"            limit_rate {self.rate};\n"
        return f"""{user}worker_processes 1;
pid {self.pidfile};
error_log {self.error_log} info;
events {{ worker_connections 256; }}
http {{
    access_log off;
    log_format veneer '{LOG_FORMAT}';
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 100000;
    server {{
        listen {listen};
        server_name localhost;
{ssl}        root {self.root};
        access_log {self.access_log} veneer;
        location / {{
{fault}        }}
    }}
}}
"""

    # ---- life cycle ----

    def start(self):
        """Starts nginx (on the port it had, or a free one) and waits until
        it accepts connections."""
        fixed = self.port is not None
        for _ in range(1 if fixed else 5):
            if not fixed:
                self.port = free_port()
            with open(self.conf, "w") as f:
                f.write(self.config())
            self.proc = subprocess.Popen(
                [NGINX, "-p", self.dir + "/", "-c", self.conf, "-e", self.error_log,
                 "-g", "daemon off;"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
            _running.add(self)
            if self._wait_ready():
                return
            self._kill()
        raise RuntimeError("nginx did not start: " + self.errors())

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if os.path.exists(self.pidfile):
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return True
                except OSError:
                    pass
            time.sleep(0.02)
        return False

    def _kill(self):
        """Kills the master named by the pid file (and the process started),
        then waits for it: its workers end with it."""
        pids = set()
        try:
            with open(self.pidfile) as f:
                pids.add(int(f.read().strip()))
        except (OSError, ValueError):
            pass
        if self.proc:
            pids.add(self.proc.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.proc:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            # the workers are in the master's session: none may outlive it
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None
        _running.discard(self)
        try:
            os.unlink(self.pidfile)
        except FileNotFoundError:
            pass

    def stop(self):
        """Stops nginx: connections are refused until start()."""
        if self.proc:
            self._kill()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def fault(self, status=None, rate=None):
        """Sets the fault (None: none) and restarts nginx with it."""
        self.status, self.rate = status, rate
        self.stop()
        self.start()

    def url(self, name):
        scheme = "https" if self.certfile else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{name}"

    def errors(self):
        try:
            with open(self.error_log) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    # ---- what was asked, as nginx logged it ----

    def log(self):
        """[(method, uri, range header, status, body bytes, content-range)] of
        every request since the last reset_counts(); waits until the log
        stops growing (nginx writes a line once the response is sent,
        which may be just after the client has it)."""
        last = None
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with open(self.access_log) as f:
                text = f.read()
            if text == last:
                break
            last = text
            time.sleep(0.03)
        out = []
        for line in last.splitlines():
            m = LINE.match(line)
            assert m, "access log line: " + line
            out.append((m[1], m[2], m[3], int(m[4]), int(m[5]), m[6]))
        return out

    @property
    def requests(self):
        """(uri, first byte, last byte) of each GET answered with data, the
        range taken from the Content-Range nginx sent (or the whole file)."""
        out = []
        for method, uri, _, status, sent, crange in self.log():
            if method != "GET" or status not in (200, 206):
                continue
            m = re.fullmatch(r"bytes (\d+)-(\d+)/\d+", crange)
            out.append((uri, int(m[1]), int(m[2])) if m else (uri, 0, sent - 1))
        return out

    def count(self):
        """The GET requests nginx logged, whatever their status."""
        return sum(1 for e in self.log() if e[0] == "GET")

    def statuses(self):
        return [e[3] for e in self.log() if e[0] == "GET"]

    def bytes_served(self):
        return sum(e[4] for e in self.log() if e[0] == "GET")

    def reset_counts(self):
        self.log()          # let the lines of requests already answered land
        os.truncate(self.access_log, 0)


@atexit.register
def _kill_all():
    for s in list(_running):
        s._kill()


def make_cert(tls_dir, run):
    """A test CA and a certificate for 127.0.0.1 signed by it, made with the
    openssl program; returns (CA certificate, certificate, key)."""
    ca, ca_key = os.path.join(tls_dir, "ca.pem"), os.path.join(tls_dir, "ca-key.pem")
    cert, key = os.path.join(tls_dir, "cert.pem"), os.path.join(tls_dir, "key.pem")
    csr, ext = os.path.join(tls_dir, "cert.csr"), os.path.join(tls_dir, "ext.cnf")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key,
         "-out", ca, "-days", "2", "-subj", "/CN=veneer test CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", "/CN=127.0.0.1"])
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
         "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext])
    return ca, cert, key
