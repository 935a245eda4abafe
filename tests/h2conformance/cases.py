"""HTTP/2 server conformance cases, grouped like h2spec by the section of RFC 9113
(HTTP/2) or RFC 7541 (HPACK, ids `hpack/...`) they test. Each case sends frames
over one connection and accepts every behaviour the RFC permits (for instance a
connection error where a stream error is required, as h2spec does).

The server is expected to run tests/h2conformance/config.yaml: "/" answers 200
"conformance-ok"; "/up" goes to an upstream that reads the request body.
"""

import struct

from client import (
    CONTINUATION, DATA, END_HEADERS, END_STREAM, ENABLE_PUSH, HEADER_TABLE_SIZE, HEADERS, INITIAL_WINDOW_SIZE,
    MAX_FRAME_SIZE, PADDED, PING, PREFACE, PRIORITY, PRIORITY_FLAG, PUSH_PROMISE, RST_STREAM, SETTINGS,
    WINDOW_UPDATE, Conn, data_frame, frame, goaway_frame, ping_frame, priority_frame, request_headers, rst_frame,
    settings_frame, window_update_frame,
)
from hyperframe.frame import DataFrame, PingFrame, SettingsFrame
from verify import (
    Fail, expect_alive, expect_conn_error, expect_error_or_ignored, expect_data, expect_malformed, expect_response, expect_stream_error,
)

BODY = b"conformance-ok"
CASES = []


def case(cid, requirement):
    def deco(fn):
        CASES.append((cid, requirement, fn))
        return fn
    return deco


# -- raw HPACK (independent of any encoder state) --

def hpack_int(value, prefix_bits, first=0):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hstr(s):
    s = s.encode() if isinstance(s, str) else s
    return hpack_int(len(s), 7) + s


def lit(name, value):
    """A literal header field without indexing, new name, no Huffman."""
    return b"\x00" + hstr(name) + hstr(value)


def block(headers):
    return b"".join(lit(n, v) for n, v in headers)


def get_block(path="/", extra=(), method="GET"):
    return block(request_headers(path, method, extra=extra))


def hdr(stream_id, blk, end_stream=True, end_headers=True, flags=0):
    return frame(HEADERS, flags | (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0),
                 stream_id, blk)


def connect(ctx, settings=()):
    return Conn(ctx.port, timeout=ctx.timeout).handshake(settings)


def held_stream(ctx, stream_id=1):
    """A connection whose stream `stream_id` is half-closed (remote) on the server
    and stays so: our initial window is 0, so the response body cannot be sent."""
    c = connect(ctx, [(INITIAL_WINDOW_SIZE, 0)])
    c.send(hdr(stream_id, get_block()))
    return c


# ---------------------------------------------------------------------------
# 3.4 HTTP/2 connection preface
# ---------------------------------------------------------------------------

@case("3.4/1", "A client preface followed by SETTINGS gets the server's SETTINGS and an ACK")
def _(ctx):
    c = connect(ctx)
    return "SETTINGS %s" % sorted(c.server_settings.items())


@case("3.4/2", "An invalid connection preface is a connection error PROTOCOL_ERROR (or close)")
def _(ctx):
    c = Conn(ctx.port, timeout=ctx.timeout)
    c.send(b"INVALID CONNECTION PREFACE\r\n\r\n", settings_frame())
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("3.4/3", "A preface not followed by a SETTINGS frame is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = Conn(ctx.port, timeout=ctx.timeout)
    c.send(PREFACE, ping_frame())
    return expect_conn_error(c, "PROTOCOL_ERROR")


# ---------------------------------------------------------------------------
# 4 HTTP frames
# ---------------------------------------------------------------------------

@case("4.1/1", "A frame of unknown type is ignored")
def _(ctx):
    c = connect(ctx)
    c.send(frame(0x16, 0, 0, b"unknown"))
    return expect_alive(c)


@case("4.1/2", "Undefined flags are ignored (PING with flags 0x16)")
def _(ctx):
    c = connect(ctx)
    c.send(frame(PING, 0x16, 0, b"h2c-ping"))
    for ev in c.events():
        if ev.kind == "closed":
            raise Fail("connection closed")
        f = ev.frame
        if isinstance(f, PingFrame):
            if "ACK" in f.flags and f.opaque_data == b"h2c-ping":
                return "PING acked"
    raise Fail("no PING ACK")


@case("4.1/3", "The reserved bit of the stream identifier is ignored")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(0x80000001, get_block()))
    return expect_response(c, 1, body=BODY)


@case("4.2/1", "A DATA frame of exactly SETTINGS_MAX_FRAME_SIZE (16384) octets is accepted")
def _(ctx):
    c = connect(ctx)
    n = c.server_settings.get(MAX_FRAME_SIZE, 16384)
    c.send(hdr(1, get_block("/up", [("content-length", str(n))], "POST"), end_stream=False),
           data_frame(1, b"x" * n, end_stream=True))
    return expect_response(c, 1)


@case("4.2/2", "A DATA frame larger than SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR")
def _(ctx):
    c = connect(ctx)
    n = c.server_settings.get(MAX_FRAME_SIZE, 16384)
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False), data_frame(1, b"x" * (n + 1), end_stream=True))
    return expect_stream_error(c, 1, "FRAME_SIZE_ERROR")


@case("4.2/3", "A HEADERS frame larger than SETTINGS_MAX_FRAME_SIZE is a connection error FRAME_SIZE_ERROR")
def _(ctx):
    c = connect(ctx)
    n = c.server_settings.get(MAX_FRAME_SIZE, 16384)
    big = get_block(extra=[("x-big-%d" % i, "a" * 1000) for i in range(n // 1000 + 2)])
    c.send(hdr(1, big))
    return expect_conn_error(c, "FRAME_SIZE_ERROR")


@case("4.3/1", "An undecodable header block is a connection error COMPRESSION_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block() + b"\x00\x05ab"))  # a literal whose name is cut short
    return expect_conn_error(c, "COMPRESSION_ERROR")


@case("4.3/2", "A PRIORITY frame between HEADERS and CONTINUATION is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    b = get_block()
    c.send(hdr(1, b[:5], end_headers=False), priority_frame(1), frame(CONTINUATION, END_HEADERS, 1, b[5:]))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("4.3/3", "Header blocks using the dynamic table across requests are decoded in order")
def _(ctx):
    c = connect(ctx)
    extra = [("x-dynamic", "value-kept-in-the-dynamic-table")]
    c.send(c.headers_frame(1, request_headers("/", extra=extra)))
    c.send(c.headers_frame(3, request_headers("/", extra=extra)))
    a = expect_response(c, 1)
    b = expect_response(c, 3)
    return "%s; %s" % (a, b)


# ---------------------------------------------------------------------------
# 5.1 Stream states
# ---------------------------------------------------------------------------

@case("5.1/1", "idle: DATA on an idle stream is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(data_frame(1, b"x", end_stream=True))
    return expect_conn_error(c, "PROTOCOL_ERROR", "STREAM_CLOSED")


@case("5.1/2", "idle: RST_STREAM on an idle stream is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(rst_frame(1))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("5.1/3", "idle: WINDOW_UPDATE on an idle stream is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(window_update_frame(1, 100))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("5.1/4", "idle: CONTINUATION on an idle stream is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(frame(CONTINUATION, END_HEADERS, 1, get_block()))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("5.1/5", "half-closed (remote): DATA is a stream error STREAM_CLOSED")
def _(ctx):
    c = held_stream(ctx)
    c.send(data_frame(1, b"x", end_stream=True))
    return expect_stream_error(c, 1, "STREAM_CLOSED")


@case("5.1/6", "half-closed (remote): HEADERS is a stream error STREAM_CLOSED")
def _(ctx):
    c = held_stream(ctx)
    c.send(hdr(1, block([("x-trailer", "late")])))
    return expect_stream_error(c, 1, "STREAM_CLOSED")


@case("5.1/7", "half-closed (remote): CONTINUATION is a stream error STREAM_CLOSED (or PROTOCOL_ERROR)")
def _(ctx):
    c = held_stream(ctx)
    c.send(frame(CONTINUATION, END_HEADERS, 1, block([("x-trailer", "late")])))
    return expect_stream_error(c, 1, "STREAM_CLOSED", "PROTOCOL_ERROR")


@case("5.1/8", "closed: DATA after the client's RST_STREAM is ignored or a STREAM_CLOSED error")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False), rst_frame(1), data_frame(1, b"x"))
    return expect_error_or_ignored(c, 1, "STREAM_CLOSED")


@case("5.1/9", "closed: HEADERS after the client's RST_STREAM is ignored or a STREAM_CLOSED error")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False), rst_frame(1), hdr(1, block([("x-t", "1")])))
    return expect_error_or_ignored(c, 1, "STREAM_CLOSED")


@case("5.1/10", "closed: DATA after END_STREAM and the whole response is ignored or a STREAM_CLOSED error")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block()))
    expect_response(c, 1)
    c.send(data_frame(1, b"x"))
    return expect_error_or_ignored(c, 1, "STREAM_CLOSED")


@case("5.1/11", "closed: CONTINUATION after the client's RST_STREAM is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False), rst_frame(1),
           frame(CONTINUATION, END_HEADERS, 1, block([("x-t", "1")])))
    return expect_conn_error(c, "PROTOCOL_ERROR", "STREAM_CLOSED")


@case("5.1/12", "closed: HEADERS on a stream that ended normally is ignored or a STREAM_CLOSED/PROTOCOL_ERROR error")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block()))
    expect_response(c, 1)
    c.send(hdr(1, get_block()))
    return expect_error_or_ignored(c, 1, "STREAM_CLOSED", "PROTOCOL_ERROR")


@case("5.1/13", "closed: CONTINUATION on a stream that ended normally is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block()))
    expect_response(c, 1)
    c.send(frame(CONTINUATION, END_HEADERS, 1, block([("x-t", "1")])))
    return expect_conn_error(c, "PROTOCOL_ERROR", "STREAM_CLOSED")


@case("5.1.1/1", "An even-numbered stream identifier from the client is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(2, get_block()))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("5.1.1/2", "A stream identifier lower than one already used is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(5, get_block()), hdr(3, get_block()))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("5.1.2/1", "Exceeding SETTINGS_MAX_CONCURRENT_STREAMS is a stream error REFUSED_STREAM or PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx, [(INITIAL_WINDOW_SIZE, 0)])
    limit = c.server_settings.get(0x3)
    if limit is None or limit > 1000:
        raise Fail("server advertises SETTINGS_MAX_CONCURRENT_STREAMS %s; the config sets 100" % limit)
    blk = get_block()
    c.send(b"".join(hdr(2 * i + 1, blk) for i in range(limit + 1)))
    return expect_stream_error(c, 2 * limit + 1, "REFUSED_STREAM", "PROTOCOL_ERROR")


@case("5.3.1/1", "HEADERS making a stream depend on itself is a stream error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, struct.pack(">IB", 1, 15) + get_block(), flags=PRIORITY_FLAG))
    return expect_stream_error(c, 1, "PROTOCOL_ERROR")


@case("5.3.1/2", "PRIORITY making a stream depend on itself is a stream error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(priority_frame(1, depends_on=1))
    return expect_stream_error(c, 1, "PROTOCOL_ERROR")


@case("5.4.1/1", "After a connection error the server sends GOAWAY and closes the connection")
def _(ctx):
    c = connect(ctx)
    c.send(data_frame(0, b"x"))
    first = expect_conn_error(c, "PROTOCOL_ERROR")
    if c.closed:
        return first
    for ev in c.events():
        if ev.kind == "closed":
            return first + ", then closed"
    raise Fail(first + ", but the connection stayed open")


@case("5.5/1", "An unknown extension frame is ignored")
def _(ctx):
    c = connect(ctx)
    c.send(frame(0xFF, 0, 1, b"extension"))
    return expect_alive(c)


@case("5.5/2", "An unknown frame inside a header block is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    b = get_block()
    c.send(hdr(1, b[:5], end_headers=False), frame(0xFF, 0, 1, b"ext"), frame(CONTINUATION, END_HEADERS, 1, b[5:]))
    return expect_conn_error(c, "PROTOCOL_ERROR")


# ---------------------------------------------------------------------------
# 6 Frame definitions
# ---------------------------------------------------------------------------

@case("6.1/1", "DATA on stream 0 is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(data_frame(0, b"x"))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.1/2", "DATA on a stream that is not open is a stream error STREAM_CLOSED")
def _(ctx):
    c = held_stream(ctx)
    c.send(data_frame(1, b"x"))
    return expect_stream_error(c, 1, "STREAM_CLOSED")


@case("6.1/3", "DATA with a pad length not less than the payload is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False),
           frame(DATA, PADDED | END_STREAM, 1, b"\x06" + b"xxxxx"))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.2/1", "HEADERS on stream 0 is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(0, get_block()))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.2/2", "HEADERS with a pad length not less than the payload is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    b = get_block()
    c.send(hdr(1, bytes([len(b) + 1]) + b, flags=PADDED))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.2/3", "A DATA frame on another stream inside a header block is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    b = get_block()
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False),
           hdr(3, b[:5], end_headers=False), data_frame(1, b"x"), frame(CONTINUATION, END_HEADERS, 3, b[5:]))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.2/4", "HEADERS with padding and priority is accepted")
def _(ctx):
    c = connect(ctx)
    b = get_block()
    c.send(hdr(1, b"\x03" + struct.pack(">IB", 0, 200) + b + b"\0\0\0", flags=PADDED | PRIORITY_FLAG))
    return expect_response(c, 1, body=BODY)


@case("6.3/1", "PRIORITY on stream 0 is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(priority_frame(0, depends_on=1))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.3/2", "PRIORITY with a length other than 5 is a stream error FRAME_SIZE_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(frame(PRIORITY, 0, 1, b"\0\0\0\0\x0f\0"))
    return expect_stream_error(c, 1, "FRAME_SIZE_ERROR")


@case("6.3/3", "PRIORITY on an idle stream is accepted")
def _(ctx):
    c = connect(ctx)
    c.send(priority_frame(9, depends_on=0))
    c.send(hdr(1, get_block()))
    return expect_response(c, 1)


@case("6.4/1", "RST_STREAM on stream 0 is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(rst_frame(0))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.4/2", "RST_STREAM with a length other than 4 is a connection error FRAME_SIZE_ERROR")
def _(ctx):
    c = held_stream(ctx)
    c.send(frame(RST_STREAM, 0, 1, b"\0\0\0\x08\0"))
    return expect_conn_error(c, "FRAME_SIZE_ERROR")


@case("6.4/3", "RST_STREAM on an open stream closes just that stream: the connection stays usable")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False), rst_frame(1))
    alive = expect_alive(c)
    c.send(hdr(3, get_block()))
    return "%s; %s" % (alive, expect_response(c, 3, body=BODY))


@case("6.5/1", "SETTINGS with ACK and a payload is a connection error FRAME_SIZE_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(frame(SETTINGS, 0x1, 0, struct.pack(">HI", ENABLE_PUSH, 0)))
    return expect_conn_error(c, "FRAME_SIZE_ERROR")


@case("6.5/2", "SETTINGS on a non-zero stream is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(settings_frame([(ENABLE_PUSH, 0)], stream_id=1))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.5/3", "SETTINGS whose length is not a multiple of 6 is a connection error FRAME_SIZE_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(frame(SETTINGS, 0, 0, b"\0\x02\0\0"))
    return expect_conn_error(c, "FRAME_SIZE_ERROR")


@case("6.5.2/1", "SETTINGS_ENABLE_PUSH other than 0 or 1 is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(settings_frame([(ENABLE_PUSH, 2)]))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.5.2/2", "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 is a connection error FLOW_CONTROL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(settings_frame([(INITIAL_WINDOW_SIZE, 1 << 31)]))
    return expect_conn_error(c, "FLOW_CONTROL_ERROR")


@case("6.5.2/3", "SETTINGS_MAX_FRAME_SIZE below 16384 is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(settings_frame([(MAX_FRAME_SIZE, 16383)]))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.5.2/4", "SETTINGS_MAX_FRAME_SIZE above 2^24-1 is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(settings_frame([(MAX_FRAME_SIZE, 1 << 24)]))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.5.2/5", "An unknown setting identifier is ignored (the SETTINGS is acknowledged)")
def _(ctx):
    c = connect(ctx)
    c.send(settings_frame([(0xFF, 1)]))
    for ev in c.events():
        if ev.kind == "closed":
            raise Fail("connection closed")
        if isinstance(ev.frame, SettingsFrame) and "ACK" in ev.frame.flags:
            return expect_alive(c)
    raise Fail("no SETTINGS ACK")


@case("6.5.3/1", "Multiple values of one setting apply in order (INITIAL_WINDOW_SIZE 100 then 1)")
def _(ctx):
    c = connect(ctx, [(INITIAL_WINDOW_SIZE, 100), (INITIAL_WINDOW_SIZE, 1)])
    c.send(hdr(1, get_block()))
    return expect_data(c, 1, 1)


@case("6.5.3/2", "A SETTINGS frame gets a SETTINGS ACK")
def _(ctx):
    c = connect(ctx)
    c.send(settings_frame([(ENABLE_PUSH, 0)]))
    for ev in c.events():
        if ev.kind == "closed":
            raise Fail("connection closed")
        if isinstance(ev.frame, SettingsFrame) and "ACK" in ev.frame.flags:
            return "SETTINGS ACK"
    raise Fail("no SETTINGS ACK")


@case("6.7/1", "A PING gets a PING ACK with the same payload")
def _(ctx):
    return expect_alive(connect(ctx))


@case("6.7/2", "A PING ACK is not answered")
def _(ctx):
    c = connect(ctx)
    c.send(ping_frame(b"unsolici", ack=True), ping_frame(b"expected"))
    for ev in c.events():
        if ev.kind == "closed":
            raise Fail("connection closed")
        f = ev.frame
        if isinstance(f, PingFrame) and "ACK" in f.flags:
            if f.opaque_data == b"expected":
                return "only the PING was acked"
            raise Fail("a PING ACK was answered: %r" % f.opaque_data)
    raise Fail("no PING ACK")


@case("6.7/3", "PING on a non-zero stream is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(ping_frame(stream_id=1))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.7/4", "PING with a length other than 8 is a connection error FRAME_SIZE_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(frame(PING, 0, 0, b"\0" * 6))
    return expect_conn_error(c, "FRAME_SIZE_ERROR")


@case("6.8/1", "GOAWAY on a non-zero stream is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(goaway_frame(stream_id=1))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.9/1", "WINDOW_UPDATE with increment 0 on the connection is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(window_update_frame(0, 0))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.9/2", "WINDOW_UPDATE with increment 0 on a stream is a stream error PROTOCOL_ERROR")
def _(ctx):
    c = held_stream(ctx)
    c.send(window_update_frame(1, 0))
    return expect_stream_error(c, 1, "PROTOCOL_ERROR")


@case("6.9/3", "WINDOW_UPDATE with a length other than 4 is a connection error FRAME_SIZE_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(frame(WINDOW_UPDATE, 0, 0, b"\0\0\x01"))
    return expect_conn_error(c, "FRAME_SIZE_ERROR")


@case("6.9.1/1", "With SETTINGS_INITIAL_WINDOW_SIZE 1 the server sends a 1-byte DATA frame")
def _(ctx):
    c = connect(ctx, [(INITIAL_WINDOW_SIZE, 1)])
    c.send(hdr(1, get_block()))
    return expect_data(c, 1, 1)


@case("6.9.1/2", "A connection window above 2^31-1 is a connection error FLOW_CONTROL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(window_update_frame(0, 0x7FFFFFFF), window_update_frame(0, 0x7FFFFFFF))
    return expect_conn_error(c, "FLOW_CONTROL_ERROR")


@case("6.9.1/3", "A stream window above 2^31-1 is a stream error FLOW_CONTROL_ERROR")
def _(ctx):
    c = held_stream(ctx)
    c.send(window_update_frame(1, 0x7FFFFFFF), window_update_frame(1, 0x7FFFFFFF))
    return expect_stream_error(c, 1, "FLOW_CONTROL_ERROR")


def data_until_ping(c, stream_id, want):
    """Reads DATA on `stream_id` until `want` bytes came (or 2 s), then sends a PING
    and keeps counting until its ACK: bytes the server sent beyond what it may
    would be there by then. Returns (bytes, frames, ended)."""
    got, frames, ended = 0, [], False
    for ev in c.events():
        if ev.kind == "closed":
            raise Fail("connection closed after %d DATA bytes" % got)
        f = ev.frame
        if isinstance(f, DataFrame) and f.stream_id == stream_id:
            got += len(f.data)
            frames.append(len(f.data))
            ended = ended or "END_STREAM" in f.flags
        if got >= want or ended:
            break
    c.send(ping_frame(b"fc-check"))
    for ev in c.events():
        if ev.kind == "closed":
            raise Fail("connection closed after %d DATA bytes" % got)
        f = ev.frame
        if isinstance(f, DataFrame) and f.stream_id == stream_id:
            got += len(f.data)
            frames.append(len(f.data))
            ended = ended or "END_STREAM" in f.flags
        if isinstance(f, PingFrame) and "ACK" in f.flags:
            return got, frames, ended
    raise Fail("no PING ACK")


@case("6.9.1/4", "The server sends no more DATA than the connection window (65535) until a WINDOW_UPDATE")
def _(ctx):
    c = connect(ctx, [(INITIAL_WINDOW_SIZE, 0x7FFFFFFF)])
    c.auto_window = False
    c.send(hdr(1, get_block("/up", [("x-test-body-size", "100000")])))
    got, _, ended = data_until_ping(c, 1, 65535)
    if got > 65535 or ended:
        raise Fail("%d DATA bytes with a 65535-byte connection window" % got)
    c.auto_window = True
    c.send(window_update_frame(0, 100000))
    _, _, _, how = c.response(1)
    total = len(c.streams[1].body)
    if how != "end" or total != 100000:
        raise Fail("after the WINDOW_UPDATE: %s with %d bytes in all" % (how, total))
    return "stopped at %d bytes, then the rest after WINDOW_UPDATE" % got


@case("6.9.1/5", "The server sends no more DATA on a stream than its window (SETTINGS_INITIAL_WINDOW_SIZE 1000)")
def _(ctx):
    c = connect(ctx, [(INITIAL_WINDOW_SIZE, 1000)])
    c.auto_window = False
    c.send(window_update_frame(0, 1 << 20), hdr(1, get_block("/up", [("x-test-body-size", "5000")])))
    got, _, ended = data_until_ping(c, 1, 1000)
    if got > 1000 or ended:
        raise Fail("%d DATA bytes with a 1000-byte stream window" % got)
    c.auto_window = True
    c.send(window_update_frame(1, 10000))
    _, _, _, how = c.response(1)
    total = len(c.streams[1].body)
    if how != "end" or total != 5000:
        raise Fail("after the WINDOW_UPDATE: %s with %d bytes in all" % (how, total))
    return "stopped at %d bytes, then the rest after WINDOW_UPDATE" % got


@case("4.2/4", "The server sends no frame larger than the client's SETTINGS_MAX_FRAME_SIZE (16384)")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", [("x-test-body-size", "60000")])))
    _, _, _, how = c.response(1)
    sizes = [len(ev.frame.data) for ev in c.seen if isinstance(ev.frame, DataFrame)]
    if how != "end" or sum(sizes) != 60000:
        raise Fail("want a 60000-byte response, got %s after %d bytes" % (how, sum(sizes)))
    if max(sizes) > 16384:
        raise Fail("a DATA frame of %d bytes" % max(sizes))
    return "%d DATA frames, the largest %d bytes" % (len(sizes), max(sizes))


@case("6.9.2/1", "Changing SETTINGS_INITIAL_WINDOW_SIZE after HEADERS adjusts the open stream's window")
def _(ctx):
    c = held_stream(ctx)
    c.send(settings_frame([(INITIAL_WINDOW_SIZE, 1)]))
    return expect_data(c, 1, 1)


@case("6.9.2/2", "SETTINGS_INITIAL_WINDOW_SIZE making a stream window exceed 2^31-1 is a FLOW_CONTROL_ERROR")
def _(ctx):
    c = held_stream(ctx)
    c.send(window_update_frame(1, 0x7FFFFFFF), settings_frame([(INITIAL_WINDOW_SIZE, 0x7FFFFFFF)]))
    return expect_stream_error(c, 1, "FLOW_CONTROL_ERROR")


@case("6.10/1", "HEADERS followed by several CONTINUATION frames is one header block")
def _(ctx):
    c = connect(ctx)
    b = get_block(extra=[("x-long", "v" * 30)])
    c.send(hdr(1, b[:10], end_headers=False), frame(CONTINUATION, 0, 1, b[10:20]),
           frame(CONTINUATION, 0, 1, b[20:40]), frame(CONTINUATION, END_HEADERS, 1, b[40:]))
    return expect_response(c, 1, body=BODY)


@case("6.10/2", "A non-CONTINUATION frame after HEADERS without END_HEADERS is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block()[:5], end_headers=False), data_frame(1, b"x"))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.10/3", "CONTINUATION on stream 0 is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    b = get_block()
    c.send(hdr(1, b[:5], end_headers=False), frame(CONTINUATION, END_HEADERS, 0, b[5:]))
    return expect_conn_error(c, "PROTOCOL_ERROR")


@case("6.10/4", "CONTINUATION after HEADERS with END_HEADERS is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = held_stream(ctx)
    c.send(frame(CONTINUATION, END_HEADERS, 1, block([("x-a", "b")])))
    return expect_conn_error(c, "PROTOCOL_ERROR", "STREAM_CLOSED")


@case("6.10/5", "CONTINUATION after a CONTINUATION with END_HEADERS is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx, [(INITIAL_WINDOW_SIZE, 0)])
    b = get_block()
    c.send(hdr(1, b[:5], end_headers=False), frame(CONTINUATION, END_HEADERS, 1, b[5:]),
           frame(CONTINUATION, END_HEADERS, 1, block([("x-a", "b")])))
    return expect_conn_error(c, "PROTOCOL_ERROR", "STREAM_CLOSED")


@case("6.10/6", "CONTINUATION on a different stream than the HEADERS is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    b = get_block()
    c.send(hdr(1, b[:5], end_headers=False), frame(CONTINUATION, END_HEADERS, 3, b[5:]))
    return expect_conn_error(c, "PROTOCOL_ERROR")


# ---------------------------------------------------------------------------
# 7 Error codes
# ---------------------------------------------------------------------------

@case("7/1", "An unknown error code in RST_STREAM triggers no special behaviour")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False), rst_frame(1, 0xFF))
    return expect_alive(c)


@case("7/2", "An unknown error code in GOAWAY is not a connection error")
def _(ctx):
    c = connect(ctx)
    c.send(goaway_frame(0, 0xFF))
    for ev in c.events(timeout=0.5):
        if ev.kind == "closed":
            return "closed after the client's GOAWAY"
        f = ev.frame
        if getattr(f, "error_code", 0) != 0:
            raise Fail("answered with %r" % ev)
    return "no error"


@case("6.9/4", "WINDOW_UPDATE on the connection and on an open stream are accepted")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", [("content-length", "4")], "POST"), end_stream=False),
           window_update_frame(0, 1000), window_update_frame(1, 1000), data_frame(1, b"body", end_stream=True))
    return expect_response(c, 1)


@case("6.3/4", "PRIORITY on an open stream is accepted")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", [("content-length", "4")], "POST"), end_stream=False),
           priority_frame(1, depends_on=0, weight=100), data_frame(1, b"body", end_stream=True))
    return expect_response(c, 1)


# ---------------------------------------------------------------------------
# 8 HTTP semantics
# ---------------------------------------------------------------------------

@case("8/1", "A GET gets its 200 response")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block()))
    return expect_response(c, 1, body=BODY)


@case("8/2", "A POST with a body in several DATA frames reaches the upstream and gets a 200")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", [("content-length", "12")], "POST"), end_stream=False),
           data_frame(1, b"hello "), data_frame(1, b"world!", end_stream=True))
    got, _, body, how = c.response(1)
    # The upstream reports the body it read: upstream.py as its length, the Rust
    # test's upstream as the body itself.
    if got != "200" or how != "end" or (b'"body_len": 12' not in body and b"hello world!" not in body):
        raise Fail("want 200 with the upstream seeing the 12-byte body, got %s %r %s" % (got, body[:200], how))
    return "200, upstream saw the 12-byte body"


@case("8/3", "A request with trailers gets a 200")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False), data_frame(1, b"body"),
           hdr(1, block([("x-trailer", "t")])))
    return expect_response(c, 1)


@case("8/4", "Concurrent streams on one connection each get their response")
def _(ctx):
    c = connect(ctx)
    c.send(b"".join(hdr(2 * i + 1, get_block()) for i in range(10)))
    done = set()
    for ev in c.events():
        if ev.kind == "closed":
            raise Fail("connection closed")
        f = ev.frame
        if "END_STREAM" in getattr(f, "flags", ()):
            done.add(f.stream_id)
        if len(done) == 10:
            return "10 responses"
    raise Fail("only %d of 10 responses" % len(done))


@case("8.1/1", "A second HEADERS (trailers) without END_STREAM is malformed: stream error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False), data_frame(1, b"x"),
           hdr(1, block([("x-trailer", "t")]), end_stream=False))
    return expect_malformed(c, 1)


@case("8.1.1/1", "DATA shorter than content-length is malformed: stream error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", [("content-length", "10")], "POST"), end_stream=False),
           data_frame(1, b"12345", end_stream=True))
    return expect_malformed(c, 1)


@case("8.1.1/2", "DATA longer than content-length is malformed: stream error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", [("content-length", "3")], "POST"), end_stream=False),
           data_frame(1, b"12345", end_stream=True))
    return expect_malformed(c, 1)


@case("8.1.1/3", "HEADERS with END_STREAM and a non-zero content-length is malformed")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", [("content-length", "5")], "POST")))
    return expect_malformed(c, 1)


@case("8/5", "A HEAD request gets its headers and no body")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block(method="HEAD")))
    got, _, body, how = c.response(1)
    if got != "200" or how != "end" or body:
        raise Fail("want a 200 without body, got %s, %d body bytes, %s" % (got, len(body), how))
    return "200, no body"


@case("8.2.3/1", "Cookie fields split in crumbs are joined with \"; \" before an HTTP/1.1 upstream")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", [("cookie", "a=1"), ("cookie", "b=2")])))
    got, _, body, how = c.response(1)
    if got != "200" or how != "end" or b"a=1; b=2" not in body:
        raise Fail("want the upstream to see 'cookie: a=1; b=2', got %s %s %r" % (got, how, body[:300]))
    return "upstream saw cookie: a=1; b=2"


@case("8.2/1", "An uppercase field name is malformed: stream error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block(extra=[("X-Upper", "a")])))
    return expect_malformed(c, 1)


@case("8.2.1/1", "A field value containing NUL, CR or LF is malformed")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block(extra=[("x-bad", "a\r\nb")])))
    return expect_malformed(c, 1)


@case("8.2.1/2", "A field name containing a space or colon is malformed")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block(extra=[("x bad", "a")])))
    return expect_malformed(c, 1)


@case("8.2.1/3", "An empty field name is malformed")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block(extra=[("", "a")])))
    return expect_malformed(c, 1)


for _i, (_name, _value) in enumerate([("connection", "keep-alive"), ("keep-alive", "timeout=5"),
                                      ("proxy-connection", "keep-alive"), ("transfer-encoding", "chunked"),
                                      ("upgrade", "websocket")], 1):
    def _make(name, value):
        def run(ctx):
            c = connect(ctx)
            c.send(hdr(1, get_block(extra=[(name, value)])))
            return expect_malformed(c, 1)
        return run
    case("8.2.2/%d" % _i, "The connection-specific field %s is malformed" % _name)(_make(_name, _value))


@case("8.2.2/6", "TE with a value other than \"trailers\" is malformed")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block(extra=[("te", "gzip")])))
    return expect_malformed(c, 1)


@case("8.2.2/7", "TE: trailers is allowed")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block(extra=[("te", "trailers")])))
    return expect_response(c, 1, body=BODY)


def _malformed_case(cid, requirement, headers, end_stream=True):
    def run(ctx):
        c = connect(ctx)
        c.send(hdr(1, block(headers), end_stream=end_stream))
        return expect_malformed(c, 1)
    case(cid, requirement)(run)


_M, _S, _P, _A = (":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "localhost")
_malformed_case("8.3/1", "An unknown pseudo-header is malformed", [_M, _S, _P, _A, (":foo", "bar")])
_malformed_case("8.3/2", "A response pseudo-header (:status) in a request is malformed", [_M, _S, _P, _A, (":status", "200")])
_malformed_case("8.3/3", "A pseudo-header after a regular field is malformed", [_M, _S, _A, ("x-a", "b"), _P])
_malformed_case("8.3.1/1", "An empty :path is malformed", [_M, _S, (":path", ""), _A])
_malformed_case("8.3.1/2", "A request without :method is malformed", [_S, _P, _A])
_malformed_case("8.3.1/3", "A request without :scheme is malformed", [_M, _P, _A])
_malformed_case("8.3.1/4", "A request without :path is malformed", [_M, _S, _A])
_malformed_case("8.3.1/5", "A duplicated :method is malformed", [_M, _M, _S, _P, _A])
_malformed_case("8.3.1/6", "A duplicated :scheme is malformed", [_M, _S, _S, _P, _A])
_malformed_case("8.3.1/7", "A duplicated :path is malformed", [_M, _S, _P, _P, _A])


@case("8.3/4", "A pseudo-header in trailers is malformed")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False), data_frame(1, b"x"),
           hdr(1, block([(":method", "POST")])))
    return expect_malformed(c, 1)


@case("8.4/1", "A PUSH_PROMISE from the client is a connection error PROTOCOL_ERROR")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False),
           frame(PUSH_PROMISE, END_HEADERS, 1, struct.pack(">I", 2) + get_block()))
    return expect_conn_error(c, "PROTOCOL_ERROR")


# ---------------------------------------------------------------------------
# RFC 7541 HPACK
# ---------------------------------------------------------------------------

def _hpack_error_case(cid, requirement, raw):
    def run(ctx):
        c = connect(ctx)
        c.send(hdr(1, raw))
        return expect_conn_error(c, "COMPRESSION_ERROR")
    case(cid, requirement)(run)


_huff_lit = lambda value: b"\x00" + hstr("x-huff") + hpack_int(len(value), 7, 0x80) + value  # noqa: E731
_hpack_error_case("hpack/2.3.3/1", "An index beyond the static and dynamic tables is a COMPRESSION_ERROR",
                  get_block() + b"\xbe")
_hpack_error_case("hpack/4.2/1", "A dynamic table size update above SETTINGS_HEADER_TABLE_SIZE is a COMPRESSION_ERROR",
                  hpack_int(4097, 5, 0x20) + get_block())
_hpack_error_case("hpack/4.2/2", "A dynamic table size update after a field is a COMPRESSION_ERROR",
                  get_block() + hpack_int(0, 5, 0x20))
_hpack_error_case("hpack/5.2/1", "A Huffman string containing EOS is a COMPRESSION_ERROR",
                  get_block() + _huff_lit(b"\xff\xff\xff\xff"))
_hpack_error_case("hpack/5.2/2", "Huffman padding longer than 7 bits is a COMPRESSION_ERROR",
                  get_block() + _huff_lit(b"\x1f\xff"))
_hpack_error_case("hpack/5.2/3", "Huffman padding that is not EOS's prefix is a COMPRESSION_ERROR",
                  get_block() + _huff_lit(b"\x18"))
_hpack_error_case("hpack/6.1/1", "An indexed field with index 0 is a COMPRESSION_ERROR", get_block() + b"\x80")


@case("hpack/2.3.2/1", "Fields added to the dynamic table are found by index in the next block")
def _(ctx):
    c = connect(ctx)
    # Literal with incremental indexing (new name): goes to dynamic index 62.
    first = get_block() + b"\x40" + hstr("x-indexed") + hstr("kept")
    c.send(hdr(1, first))
    a = expect_response(c, 1)
    # Indexed :method GET, :scheme http, :path /, literal authority, then dynamic 62.
    c.send(hdr(3, b"\x82\x86\x84" + lit(":authority", "localhost") + b"\xbe"))
    b = expect_response(c, 3)
    return "%s; %s" % (a, b)


@case("hpack/6.2.1/1", "A literal with incremental indexing and an indexed name is accepted and indexed")
def _(ctx):
    c = connect(ctx)
    # :authority (static index 1) with incremental indexing: dynamic index 62.
    c.send(hdr(1, b"\x82\x86\x84\x41" + hstr("localhost")))
    a = expect_response(c, 1)
    c.send(hdr(3, b"\x82\x86\x84\xbe"))
    return "%s; %s" % (a, expect_response(c, 3))


@case("hpack/6.2.2/1", "A literal without indexing and an indexed name is accepted")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, b"\x82\x86\x84\x01" + hstr("localhost")))
    return expect_response(c, 1)


@case("hpack/6.2.3/2", "A never-indexed literal with an indexed name is accepted")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, b"\x82\x86\x84\x11" + hstr("localhost")))
    return expect_response(c, 1)


@case("hpack/4.2/3", "A dynamic table size update to 0 at the start of a block is accepted")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, hpack_int(0, 5, 0x20) + get_block()))
    return expect_response(c, 1)


@case("hpack/5.2/4", "Huffman-encoded strings are decoded")
def _(ctx):
    c = connect(ctx)
    c.send(c.headers_frame(1, request_headers("/", extra=[("x-huffman", "some huffman value")])))
    return expect_response(c, 1, body=BODY)


@case("hpack/6.2.3/1", "A never-indexed literal field is accepted")
def _(ctx):
    c = connect(ctx)
    c.send(hdr(1, get_block() + b"\x10" + hstr("x-secret") + hstr("s")))
    return expect_response(c, 1)


@case("hpack/6.3/1", "A dynamic table size update within SETTINGS_HEADER_TABLE_SIZE is accepted")
def _(ctx):
    c = connect(ctx, [(HEADER_TABLE_SIZE, 4096)])
    c.send(hdr(1, hpack_int(100, 5, 0x20) + get_block()))
    return expect_response(c, 1)


@case("hpack/4.2/4", "After SETTINGS_HEADER_TABLE_SIZE 0 the server's header blocks decode with an empty dynamic table")
def _(ctx):
    c = connect(ctx, [(HEADER_TABLE_SIZE, 0)])
    # Our SETTINGS is acknowledged: the server's encoder must now fit a 0-byte table.
    c.decoder.max_allowed_table_size = 0
    c.decoder.header_table_size = 0
    out = []
    for sid in (1, 3, 5):
        c.send(hdr(sid, get_block()))
        try:
            out.append(expect_response(c, sid, body=BODY))
        except Exception as e:  # noqa: BLE001 - an hpack decoding error is the failure
            raise Fail("response on stream %d does not decode with a 0-byte table: %s" % (sid, e))
    return "; ".join(out)
