"""A small HTTP/1.1 server, in Python, for the remote-image faults that
nginx (tests/nginx_server.py, the tests' server otherwise) cannot produce:
a connection reset in the middle of a body, and a fault for exactly one
request.  It serves the files of
one directory with byte ranges (206 and Content-Range, which the standard
library's http.server does not do), keeps connections alive, optionally
over TLS, records every request, and injects faults on demand:

  delay       seconds to wait before answering
  status      answer every GET with this status instead (404, 500, ...)
  reset_after send the headers and this many body bytes, then reset the
              connection (RST)
  faults      how many requests status and reset_after hit, then stop
              (None: every one); faulted counts the requests they hit
  etag        a fixed ETag instead of one derived from size and mtime (so
              that content changed under the same validator reaches the
              client)
"""
import http.server
import os
import re
import socket
import ssl
import struct
import threading
import time


class RangeServer:
    def __init__(self, root, certfile=None, keyfile=None):
        self.root = root
        self.requests = []          # (path, first byte, last byte) of each GET
        self.lock = threading.Lock()
        self.delay = 0.0
        self.status = None
        self.reset_after = None
        self.faults = None
        self.faulted = 0
        self.etag = None
        self.certfile, self.keyfile = certfile, keyfile
        self.port = None
        self.httpd = None
        self.conns = set()          # open client connections, closed by stop()
        self.start()

    # ---- life cycle ----

    def start(self):
        server = self

        class Handler(RangeHandler):
            srv = server

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port or 0), Handler)
        self.httpd.daemon_threads = True
        if self.certfile:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.certfile, self.keyfile)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        """Stops listening and drops every open connection: clients get refused."""
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        with self.lock:
            conns, self.conns = self.conns, set()
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def url(self, name):
        scheme = "https" if self.certfile else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{name}"

    def fault_now(self):
        """Whether this request gets the fault set, counting it."""
        with self.lock:
            if self.faults is not None:
                if self.faults <= 0:
                    return False
                self.faults -= 1
            self.faulted += 1
            return True

    # ---- what was asked ----

    def reset_counts(self):
        with self.lock:
            self.requests.clear()

    def count(self):
        with self.lock:
            return len(self.requests)

    def bytes_served(self):
        with self.lock:
            return sum(b - a + 1 for _, a, b in self.requests)


class RangeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    srv = None

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        with self.srv.lock:
            self.srv.conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.srv.lock:
                self.srv.conns.discard(self.connection)

    def do_HEAD(self):
        self.serve(head=True)

    def do_GET(self):
        self.serve(head=False)

    def fail(self, code):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def serve(self, head):
        srv = self.srv
        if srv.delay:
            time.sleep(srv.delay)
        path = os.path.join(srv.root, os.path.basename(self.path.split("?")[0]))
        if srv.status and srv.fault_now():
            return self.fail(srv.status)
        try:
            f = open(path, "rb")
        except OSError:
            return self.fail(404)
        with f:
            self.serve_file(f, head)

    def serve_file(self, f, head):
        srv = self.srv
        st = os.fstat(f.fileno())
        size = st.st_size
        first, last = 0, size - 1
        rng = self.headers.get("Range")
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                return self.fail(416)
            if m.group(1):
                first = int(m.group(1))
                last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            else:
                first, last = max(0, size - int(m.group(2))), size - 1
            if first >= size or first > last:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        with srv.lock:
            if not head:
                srv.requests.append((self.path, first, last))
        f.seek(first)
        body = f.read(last + 1 - first)
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", srv.etag or f'"{size:x}-{st.st_mtime_ns:x}"')
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if head:
            return
        if srv.reset_after is not None and srv.fault_now():
            self.wfile.write(body[:srv.reset_after])
            self.wfile.flush()
            # SO_LINGER 0: close() sends a reset, not an orderly end
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        self.wfile.write(body)

