"""A tiny HTTP/1.1 upstream for running the suite against Envoy by hand: answers
every request with 200 and a JSON body naming the method, path, body length and cookie
(it reads bodies by content-length or chunked encoding), or with N bytes when the
request has `x-test-body-size: N` (as the Rust tests' upstream does)."""

import http.server
import json
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self):
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("content-length", "0") or 0)
        return self.rfile.read(n) if n else b""

    def _answer(self):
        body = self._body()
        size = self.headers.get("x-test-body-size")
        if size is not None:
            out = b"x" * int(size)
        else:
            out = json.dumps({"method": self.command, "path": self.path, "body_len": len(body),
                              "cookie": self.headers.get_all("cookie")}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_PATCH = _answer


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        pass  # clients (the proxy) hang up mid-request in many cases; that is expected


class Upstream:
    def __init__(self):
        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
