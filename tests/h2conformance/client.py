"""A frame-level HTTP/2 client over a raw socket, for conformance and attack tests.

Outbound frames are built by hand (so that malformed ones can be sent); inbound
frames are parsed with hyperframe and header blocks decoded with hpack. Every read
is bounded by a deadline; nothing here sleeps to synchronise.
"""

import socket
import struct
import time
import urllib.parse
import urllib.request

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 section 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# Settings identifiers.
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6

# Error codes (RFC 9113 section 7).
ERRORS = {
    0x0: "NO_ERROR",
    0x1: "PROTOCOL_ERROR",
    0x2: "INTERNAL_ERROR",
    0x3: "FLOW_CONTROL_ERROR",
    0x4: "SETTINGS_TIMEOUT",
    0x5: "STREAM_CLOSED",
    0x6: "FRAME_SIZE_ERROR",
    0x7: "REFUSED_STREAM",
    0x8: "CANCEL",
    0x9: "COMPRESSION_ERROR",
    0xA: "CONNECT_ERROR",
    0xB: "ENHANCE_YOUR_CALM",
    0xC: "INADEQUATE_SECURITY",
    0xD: "HTTP_1_1_REQUIRED",
}
CODES = {v: k for k, v in ERRORS.items()}

DEFAULT_TIMEOUT = 2.0


def err_name(code):
    return ERRORS.get(code, "0x%x" % code)


def frame(ftype, flags, stream_id, payload=b"", length=None):
    """The bytes of one frame; `length` overrides the length field (for lies)."""
    n = len(payload) if length is None else length
    return struct.pack(">I", n)[1:] + struct.pack(">BBI", ftype, flags, stream_id & 0xFFFFFFFF) + payload


def settings_frame(pairs=(), ack=False, stream_id=0):
    return frame(SETTINGS, ACK if ack else 0, stream_id, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def ping_frame(data=b"\0" * 8, ack=False, stream_id=0):
    return frame(PING, ACK if ack else 0, stream_id, data)


def rst_frame(stream_id, code=0x8):
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def window_update_frame(stream_id, increment):
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def priority_frame(stream_id, depends_on=0, weight=15, exclusive=False):
    dep = depends_on | (0x80000000 if exclusive else 0)
    return frame(PRIORITY, 0, stream_id, struct.pack(">IB", dep, weight))


def goaway_frame(last_stream_id=0, code=0, stream_id=0, debug=b""):
    return frame(GOAWAY, 0, stream_id, struct.pack(">II", last_stream_id, code) + debug)


def data_frame(stream_id, data=b"", end_stream=False, flags=0):
    return frame(DATA, flags | (END_STREAM if end_stream else 0), stream_id, data)


class Closed(Exception):
    """The server closed the connection (EOF or reset)."""


class Event:
    """One thing seen from the server: a frame (with decoded headers for HEADERS) or
    the connection closing."""

    def __init__(self, kind, frame=None, headers=None):
        self.kind = kind  # a frame class name, or "closed"
        self.frame = frame
        self.headers = headers

    @property
    def stream_id(self):
        return self.frame.stream_id if self.frame is not None else None

    def __repr__(self):
        if self.kind == "closed":
            return "connection closed"
        f = self.frame
        if isinstance(f, GoAwayFrame):
            return "GOAWAY(%s, last=%d, %r)" % (err_name(f.error_code), f.last_stream_id, f.additional_data[:60])
        if isinstance(f, RstStreamFrame):
            return "RST_STREAM(stream %d, %s)" % (f.stream_id, err_name(f.error_code))
        if self.headers is not None:
            return "HEADERS(stream %d, %s%s)" % (f.stream_id, dict(self.headers).get(":status", "?"),
                                                 ", END_STREAM" if "END_STREAM" in f.flags else "")
        if isinstance(f, DataFrame):
            return "DATA(stream %d, %d bytes%s)" % (f.stream_id, len(f.data),
                                                    ", END_STREAM" if "END_STREAM" in f.flags else "")
        return "%s(stream %d, flags %s)" % (type(f).__name__, f.stream_id, sorted(f.flags))


class Stream:
    """What the server sent on one stream so far."""

    def __init__(self):
        self.status = None
        self.headers = None
        self.body = b""
        self.how = None  # 'end', 'rst:<CODE>' once the stream is over


class Conn:
    """One HTTP/2 connection to 127.0.0.1:port."""

    def __init__(self, port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT, rcvbuf=None):
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 1 << 30
        self.server_settings = {}
        self.closed = False
        self.pending_block = None  # (stream_id, bytes, first frame) of an unfinished header block
        self.seen = []  # every event read so far
        self.streams = {}  # stream id -> Stream, for every stream the server answered on
        self.auto_window = True  # give back the flow-control window of every DATA read

    # -- sending --

    def send(self, *chunks):
        try:
            self.sock.sendall(b"".join(chunks))
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError) as e:
            raise Closed("send failed: %s" % e)

    def try_send(self, *chunks):
        """send, returning False instead of raising when the connection is gone."""
        try:
            self.send(*chunks)
            return True
        except Closed:
            return False

    def encode(self, headers, huffman=True):
        return self.encoder.encode(headers, huffman=huffman)

    def headers_frame(self, stream_id, headers, end_stream=True, end_headers=True, block=None, flags=0):
        block = self.encode(headers) if block is None else block
        f = flags | (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
        return frame(HEADERS, f, stream_id, block)

    def send_headers(self, stream_id, headers, end_stream=True, end_headers=True):
        self.send(self.headers_frame(stream_id, headers, end_stream, end_headers))

    # -- the connection preface --

    def handshake(self, settings=(), wait_ack=True):
        """Sends the preface and SETTINGS, reads the server's SETTINGS and ACKs it,
        and (by default) waits for the server's ACK of ours."""
        self.send(PREFACE, settings_frame(settings))
        got_settings = False
        got_ack = not wait_ack
        deadline = time.monotonic() + self.timeout
        while not (got_settings and got_ack):
            ev = self.next_event(deadline)
            if ev is None:
                raise AssertionError("handshake: no %s from the server" %
                                     ("SETTINGS" if not got_settings else "SETTINGS ACK"))
            if ev.kind == "closed":
                raise AssertionError("handshake: connection closed")
            f = ev.frame
            if isinstance(f, SettingsFrame):
                if "ACK" in f.flags:
                    got_ack = True
                else:
                    self.server_settings.update(f.settings)
                    self.send(settings_frame(ack=True))
                    got_settings = True
        return self

    # -- receiving --

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except (ConnectionResetError, ConnectionAbortedError, OSError):
                chunk = b""
            if not chunk:
                self.closed = True
                raise Closed()
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self, deadline):
        """The next frame (hyperframe object), None at the deadline; raises Closed."""
        head = self._read_exact(9, deadline)
        if head is None:
            return None
        f, length = Frame.parse_frame_header(memoryview(head))
        # Read the body with a generous deadline: a frame's header came, its body follows.
        body = self._read_exact(length, max(deadline, time.monotonic() + self.timeout))
        if body is None:
            raise AssertionError("frame body did not arrive")
        f.parse_body(memoryview(body))
        return f

    def next_event(self, deadline=None):
        """The next event (a frame, decoded HEADERS, or 'closed'); None at the deadline."""
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        if self.closed:
            return Event("closed")
        while True:
            try:
                f = self.read_frame(deadline)
            except Closed:
                ev = Event("closed")
                self.seen.append(ev)
                return ev
            if f is None:
                return None
            if isinstance(f, (HeadersFrame, ContinuationFrame)):
                if isinstance(f, HeadersFrame):
                    self.pending_block = [f, bytes(f.data)]
                elif self.pending_block is not None:
                    self.pending_block[1] += bytes(f.data)
                if "END_HEADERS" in f.flags and self.pending_block is not None:
                    first, block = self.pending_block
                    self.pending_block = None
                    ev = Event("HeadersFrame", first, self.decoder.decode(block, raw=False))
                    self._track(ev)
                    return ev
                continue
            if isinstance(f, SettingsFrame) and "ACK" not in f.flags:
                self.server_settings.update(f.settings)
            ev = Event(type(f).__name__, f)
            self._track(ev)
            return ev

    def _track(self, ev):
        self.seen.append(ev)
        f = ev.frame
        if f.stream_id == 0:
            return
        st = self.streams.setdefault(f.stream_id, Stream())
        if ev.headers is not None and st.headers is None:
            st.headers = ev.headers
            st.status = dict(ev.headers).get(":status")
        elif isinstance(f, DataFrame):
            st.body += bytes(f.data)
            if f.flow_controlled_length and self.auto_window:
                self.try_send(window_update_frame(0, f.flow_controlled_length),
                              window_update_frame(f.stream_id, f.flow_controlled_length))
        elif isinstance(f, RstStreamFrame) and st.how is None:
            st.how = "rst:" + err_name(f.error_code)
        if "END_STREAM" in f.flags and st.how is None:
            st.how = "end"

    def events(self, timeout=None):
        """Yields events until the connection closes (the 'closed' event is yielded)
        or `timeout` passes."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            ev = self.next_event(deadline)
            if ev is None:
                return
            yield ev
            if ev.kind == "closed":
                return

    def response(self, stream_id, timeout=None):
        """Reads until stream `stream_id` ends. Returns (status, headers, body, how)
        where how is 'end', 'rst:<CODE>', 'goaway:<CODE>', 'closed' or 'timeout'."""
        st = self.streams.setdefault(stream_id, Stream())
        if st.how is not None:
            return st.status, st.headers, st.body, st.how
        for ev in self.events(timeout):
            if ev.kind == "closed":
                return st.status, st.headers, st.body, "closed"
            f = ev.frame
            if isinstance(f, GoAwayFrame):
                if f.error_code != 0 or f.last_stream_id < stream_id:
                    return st.status, st.headers, st.body, "goaway:" + err_name(f.error_code)
                continue
            if isinstance(f, PingFrame) and "ACK" not in f.flags:
                self.try_send(ping_frame(f.opaque_data, ack=True))
            if st.how is not None:
                return st.status, st.headers, st.body, st.how
        return st.status, st.headers, st.body, "timeout"

    def ping_roundtrip(self, data=b"h2c-ping", timeout=None, send=True):
        """Sends a PING (unless `send` is False: already sent) and waits for its ACK.
        Returns None when acked, else what happened instead (a string)."""
        if send and not self.try_send(ping_frame(data)):
            return "connection closed (send failed)"
        for ev in self.events(timeout):
            if ev.kind == "closed":
                return "connection closed"
            f = ev.frame
            if isinstance(f, GoAwayFrame) and f.error_code != 0:
                return repr(ev)
            if isinstance(f, PingFrame) and "ACK" in f.flags and f.opaque_data == data:
                return None
        return "no PING ACK"

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def request_headers(path="/", method="GET", authority="localhost", extra=()):
    return [(":method", method), (":scheme", "http"), (":path", path), (":authority", authority)] + list(extra)


# -- the admin endpoint --

def stat(admin_port, name):
    """A counter's value from /stats (text format; 0 when absent)."""
    url = "http://127.0.0.1:%d/stats?filter=%s" % (
        admin_port, urllib.parse.quote("^" + name.replace(".", "\\.") + "$"))
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        k, _, v = line.partition(": ")
        if k == name:
            return int(v.strip())
    return 0
