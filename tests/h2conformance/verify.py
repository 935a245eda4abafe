"""Checks shared by the conformance cases and the attack tests. Each `expect_*`
returns a short description of what it saw when the behaviour is one the RFC
permits, and raises Fail otherwise."""

import time

from hyperframe.frame import DataFrame, GoAwayFrame, PingFrame, RstStreamFrame

from client import CODES, Conn, ping_frame, request_headers


class Fail(Exception):
    pass


def codes_of(names):
    return {CODES[n] for n in names}


def expect_conn_error(c, *names, timeout=None):
    """A connection error: GOAWAY with one of `names`, or the connection closed
    (h2spec accepts a close without GOAWAY too)."""
    want = codes_of(names)
    seen = []
    for ev in c.events(timeout):
        if ev.kind == "closed":
            return "connection closed" + (" after " + ", ".join(seen) if seen else "")
        f = ev.frame
        if isinstance(f, GoAwayFrame):
            if f.error_code in want:
                return repr(ev)
            if f.error_code != 0:
                raise Fail("want GOAWAY %s, got %r" % ("/".join(names), ev))
        seen.append(repr(ev))
    raise Fail("want GOAWAY %s or a close; got only %s" % ("/".join(names), seen[-5:] or "nothing"))


def expect_stream_error(c, stream_id, *names, timeout=None, allow_4xx=False):
    """A stream error on `stream_id` (RST_STREAM with one of `names`) or a
    connection error with one of `names` or a close. With `allow_4xx`, a 4xx
    response on the stream is accepted too (RFC 9113 8.1.1: a server may answer a
    malformed request with a 4xx before closing or resetting the stream)."""
    want = codes_of(names)
    seen = []
    for ev in c.events(timeout):
        if ev.kind == "closed":
            return "connection closed" + (" after " + ", ".join(seen) if seen else "")
        f = ev.frame
        if isinstance(f, GoAwayFrame):
            if f.error_code in want:
                return repr(ev)
            if f.error_code != 0:
                raise Fail("want RST_STREAM/GOAWAY %s, got %r" % ("/".join(names), ev))
        elif isinstance(f, RstStreamFrame) and f.stream_id == stream_id:
            if f.error_code in want:
                return repr(ev)
            raise Fail("want RST_STREAM %s, got %r" % ("/".join(names), ev))
        elif ev.headers is not None and f.stream_id == stream_id:
            status = dict(ev.headers).get(":status", "")
            if allow_4xx and status.startswith("4"):
                return "HTTP %s response" % status
            if "END_STREAM" in f.flags:
                raise Fail("want a stream error %s, got a complete %s response" % ("/".join(names), status))
        elif isinstance(f, DataFrame) and f.stream_id == stream_id and "END_STREAM" in f.flags:
            raise Fail("want a stream error %s, the stream ended normally (%s)" % ("/".join(names), seen[-3:]))
        elif isinstance(f, PingFrame) and "ACK" not in f.flags:
            c.try_send(ping_frame(f.opaque_data, ack=True))
        seen.append(repr(ev))
    raise Fail("want RST_STREAM/GOAWAY %s; got only %s" % ("/".join(names), seen[-5:] or "nothing"))


def expect_error_or_ignored(c, stream_id, *names, timeout=None):
    """For frames the RFC lets the server either ignore or answer with an error
    (RFC 9113 5.1: frames on a closed stream MAY be a connection error
    STREAM_CLOSED): sends a PING right after, then passes on an error with one of
    `names` (RST_STREAM on the stream, GOAWAY, or a close) or, when the PING ACK
    comes first, as "ignored"."""
    want = codes_of(names)
    if not c.try_send(ping_frame(b"ignored?")):
        return "connection closed"
    seen = []
    for ev in c.events(timeout):
        if ev.kind == "closed":
            return "connection closed" + (" after " + ", ".join(seen) if seen else "")
        f = ev.frame
        if isinstance(f, GoAwayFrame) and f.error_code != 0:
            if f.error_code in want:
                return repr(ev)
            raise Fail("want GOAWAY %s or nothing, got %r" % ("/".join(names), ev))
        if isinstance(f, RstStreamFrame) and f.stream_id == stream_id:
            if f.error_code in want:
                return repr(ev)
            raise Fail("want RST_STREAM %s or nothing, got %r" % ("/".join(names), ev))
        if isinstance(f, PingFrame) and "ACK" in f.flags and f.opaque_data == b"ignored?":
            return "ignored (PING acked)"
        seen.append(repr(ev))
    raise Fail("neither an error %s nor the PING ACK; got only %s" % ("/".join(names), seen[-5:] or "nothing"))


def expect_malformed(c, stream_id, timeout=None):
    """A malformed request (RFC 9113 8.1.1): stream error PROTOCOL_ERROR (or a
    connection error, or a 4xx response)."""
    return expect_stream_error(c, stream_id, "PROTOCOL_ERROR", timeout=timeout, allow_4xx=True)


def expect_alive(c, timeout=None):
    """The connection is still usable: a PING gets its ACK."""
    err = c.ping_roundtrip(timeout=timeout)
    if err is not None:
        raise Fail("connection not usable: " + err)
    return "PING acked"


def expect_response(c, stream_id, status="200", body=None, timeout=None):
    got, headers, data, how = c.response(stream_id, timeout)
    if how != "end" or got != status:
        raise Fail("want a %s response, got status %s, %d body bytes, %s" % (status, got, len(data), how))
    if body is not None and data != body:
        raise Fail("want body %r, got %r" % (body, data[:100]))
    return "%s, %d body bytes" % (got, len(data))


def expect_data(c, stream_id, length, timeout=None):
    """A DATA frame on `stream_id` carrying exactly `length` bytes comes first."""
    for ev in c.events(timeout):
        if ev.kind == "closed":
            raise Fail("connection closed before DATA")
        f = ev.frame
        if isinstance(f, (GoAwayFrame, RstStreamFrame)):
            raise Fail("want DATA, got %r" % ev)
        if isinstance(f, DataFrame) and f.stream_id == stream_id:
            if len(f.data) == length:
                return "DATA with %d bytes" % length
            raise Fail("want DATA with %d bytes, got %d" % (length, len(f.data)))
    raise Fail("no DATA frame on stream %d" % stream_id)


def fresh_request_served(port, timeout=None):
    """A new connection right now gets a 200 for GET /."""
    deadline_timeout = timeout or 3.0
    start = time.monotonic()
    try:
        c = Conn(port, timeout=deadline_timeout).handshake()
    except Exception as e:  # noqa: BLE001 - any failure is the answer
        raise Fail("fresh connection failed: %s" % e)
    try:
        c.send_headers(1, request_headers("/"))
        got = expect_response(c, 1, timeout=deadline_timeout)
        return "fresh connection served (%s in %.0f ms)" % (got, 1000 * (time.monotonic() - start))
    finally:
        c.close()


__all__ = ["Fail", "expect_conn_error", "expect_stream_error", "expect_malformed", "expect_alive",
           "expect_response", "expect_error_or_ignored", "expect_data", "fresh_request_served"]
