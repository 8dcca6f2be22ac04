"""A proxy in front of the test cluster's PostgreSQL that can slow the
client's bytes (delay), change them once (rewrite: same length, or the
message's length is wrong), refuse connections (down_now, up), or lose one
answer: the statement reaches the server and commits, and the connection
breaks before the client hears so - what a network cut or a failover at
the wrong moment does.

It listens on a Unix socket of its own and passes bytes through both
ways.  Armed with a marker (bytes the client will send, e.g. a value in a
task's context), it lets the statement carrying the marker through, keeps
everything the server answers from then on up to the ReadyForQuery that
follows the commit, and closes the connection instead of passing that on.
Or, armed to lose the statement itself, it closes the connection without
passing the statement on: the client cannot tell the two apart.  Or it
cuts the client off as soon as the statement has passed, and lets the
server finish it unheard.  Or it tells the client an error of its own
making instead of the answer (a PANIC, an error without a code) before it
closes the connection.  Or it renames the prepared statement the next
statement carrying a marker runs (as if a pooler in transaction mode had
handed the session to another server process).  Or it ends connections
as they are made: the server's answer to the startup, then a FATAL in
the same bytes, as a server stopping at that moment sends.  Or, down, it
lets in only the connections of one application_name (one of a client's
sessions back before the others).
"""

import os
import shutil
import socket
import struct
import tempfile
import threading
import time


# What a connection ended as it was made hears.
END_STARTUP_MESSAGE = b"terminating connection as it was made (the proxy)"


class PgProxy:
    def __init__(self, pg, tcp=False):
        """tcp: listen on 127.0.0.1 (dsn() names it "localhost"), not on
        a Unix socket."""
        self.pg = pg
        self.tcp = tcp
        self.dir = tempfile.mkdtemp(prefix="taskerd-pgproxy-")
        self.path = os.path.join(self.dir, ".s.PGSQL.%d" % pg.port)
        self.target = os.path.join(pg.sockdir, ".s.PGSQL.%d" % pg.port)
        self.lock = threading.Lock()
        self.marker = None
        self.then_down = False
        self.lose_statement = False
        self.cut = False
        self.hold = 0
        self.instead = None
        self.lost = threading.Event()   # the armed answer was lost
        self.refused = 0                # connections refused while down
        self.down = False               # refuse new connections
        self.admit = None               # down: but let in this app name
        self.admitted = 0               # connections so let in
        self.delay = 0                  # seconds before passing bytes on
        self.rewrite = None             # (old, new): once, client's bytes
        self.unprepare = None           # marker: its Bind's statement renamed
        self.end_startups = 0           # connections to end as made
        self.ended = 0                  # connections so ended
        self.conns = []
        self.closed = False
        if tcp:
            self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.listener.bind(("127.0.0.1", 0))
            self.port = self.listener.getsockname()[1]
        else:
            self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.listener.bind(self.path)
        self.listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def dsn(self, dbname):
        if self.tcp:
            # (No SSL or GSS request: their one-byte answers are not
            # messages _back can read.)
            return ("host=localhost port=%d dbname=%s user=%s "
                    "sslmode=disable gssencmode=disable" % (
                        self.port, dbname, self.pg.user))
        return "host=%s port=%d dbname=%s user=%s" % (
            self.dir, self.pg.port, dbname, self.pg.user)

    def lose_answer_to(self, marker, then_down=False, statement=False,
                       cut=False, hold=0, instead=None):
        """Lose the answer to the next statement that carries marker
        (bytes); with statement, lose the statement instead; with cut,
        close the client's side as soon as the statement has passed; with
        hold, keep the answer that many seconds before losing it; with
        instead (an ErrorResponse's fields), send that error in its place.
        then_down: also break every other connection and refuse new ones
        until up() is called."""
        with self.lock:
            self.marker = marker
            self.then_down = then_down
            self.lose_statement = statement
            self.cut = cut
            self.hold = hold
            self.instead = instead
            self.lost.clear()

    def down_now(self):
        """Break every connection and refuse new ones until up()."""
        with self.lock:
            self.down = True
            conns, self.conns = self.conns, []
        for c in conns:
            self._shut(c)

    def up(self, only=None):
        """Take new connections again; with only (an application_name),
        only those that name it in their startup, the others refused
        until up() is called again."""
        with self.lock:
            self.down = only is not None
            self.admit = only

    def close(self):
        self.closed = True
        try:
            self.listener.close()
        except OSError:
            pass
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            self._shut(c)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- inside --

    @staticmethod
    def _shut(pair):
        for s in pair:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                server.connect(self.target)
            except OSError:
                client.close()
                continue
            pair = (client, server)
            state = {"swallow": False, "startup": True}
            # Under the lock _lose takes: a connection is either among
            # those it cuts, or sees that the proxy is down.
            with self.lock:
                down, admit = self.down, self.admit
                if not down:
                    self.conns.append(pair)
            if down and admit is not None:
                threading.Thread(target=self._admit, args=(pair, state),
                                 daemon=True).start()
                continue
            if down:
                self.refused += 1
                self._shut(pair)
                continue
            self._pass(pair, state)

    def _pass(self, pair, state):
        threading.Thread(target=self._up, args=(pair, state),
                         daemon=True).start()
        threading.Thread(target=self._back, args=(pair, state),
                         daemon=True).start()

    def _admit(self, pair, state):
        """Down, but for one application_name: read the client's startup
        message, and pass it and the rest on if it names that one."""
        client, server = pair
        startup = b""
        try:
            while len(startup) < 4 or \
                    len(startup) < struct.unpack("!I", startup[:4])[0]:
                data = client.recv(65536)
                if not data:
                    break
                startup += data
        except OSError:
            pass
        fields = startup[8:].split(b"\0")
        params = dict(zip(fields[0::2], fields[1::2]))
        with self.lock:
            ok = not self.down or (self.admit is not None and
                                   params.get(b"application_name") ==
                                   self.admit.encode())
            if ok:
                self.conns.append(pair)
                self.admitted += 1
            else:
                self.refused += 1
        try:
            if ok:
                server.sendall(startup)
        except OSError:
            ok = False
        if not ok:
            self._shut(pair)
            return
        self._pass(pair, state)

    def _up(self, pair, state):
        """Client to server, watching for the marker."""
        client, server = pair
        tail = b""
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._shut(pair)
                return
            with self.lock:
                marker = self.marker
                if marker is not None and marker in tail + data:
                    self.marker = None
                    state["swallow"] = True
                    if self.lose_statement:
                        state["drop"] = True
                    state["cut"] = self.cut
                    state["instead"] = self.instead
            if state.get("drop"):
                self._lose(pair)
                return
            if state.get("cut"):
                # The server gets the statement; the client is gone.
                try:
                    server.sendall(data)
                except OSError:
                    pass
                self.lost.set()
                self._shut((client,))
                return
            if marker is not None:
                tail = (tail + data)[-len(marker):]
            with self.lock:
                if self.unprepare is not None and self.unprepare in data:
                    data = self._unprepared(data, self.unprepare)
                    self.unprepare = None
                if self.rewrite is not None and self.rewrite[0] in data:
                    data = data.replace(*self.rewrite, 1)
                    self.rewrite = None
                delay = self.delay
            if delay:
                time.sleep(delay)
            try:
                server.sendall(data)
            except OSError:
                self._shut(pair)
                return

    def _back(self, pair, state):
        """Server to client, message by message, so that a lost answer
        ends exactly at its ReadyForQuery."""
        client, server = pair
        buf = b""
        while True:
            try:
                data = server.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._shut(pair)
                return
            buf += data
            out = b""
            while len(buf) >= 5:
                (length,) = struct.unpack("!I", buf[1:5])
                if len(buf) < 1 + length:
                    break
                msg, buf = buf[:1 + length], buf[1 + length:]
                if msg[:1] == b"Z" and state["startup"]:
                    state["startup"] = False
                    if self._end_startup(pair, out + msg):
                        return
                if not state["swallow"]:
                    out += msg
                elif msg[:1] == b"Z":
                    # Committed; the client never hears it.
                    if self.hold:
                        time.sleep(self.hold)
                    if state.get("instead") is not None:
                        fields = state["instead"]
                        try:
                            client.sendall(b"E" + struct.pack(
                                "!I", 4 + len(fields)) + fields)
                        except OSError:
                            pass
                    self._lose(pair)
                    return
            if out:
                try:
                    client.sendall(out)
                except OSError:
                    self._shut(pair)
                    return

    @staticmethod
    def _unprepared(data, marker):
        """data with the Bind that carries marker naming "T..." for the
        client's "t..." statement: one the server never prepared."""
        at = data.find(marker)
        b = data.rfind(b"B", 0, at)
        while b >= 0:
            (length,) = struct.unpack("!I", data[b + 1:b + 5].ljust(4, b"\0"))
            if data[b + 5:b + 7] == b"\0t" and b + 1 + length > at:
                return data[:b + 6] + b"T" + data[b + 7:]
            b = data.rfind(b"B", 0, b)
        raise AssertionError("no Bind carries the marker")

    def _end_startup(self, pair, answer):
        """If armed, the startup's answer with a FATAL after it, and the
        connection closed."""
        with self.lock:
            if self.end_startups == 0:
                return False
            self.end_startups -= 1
        fields = (b"SFATAL\0VFATAL\0C57P01\0M" + END_STARTUP_MESSAGE +
                  b"\0\0")
        fatal = b"E" + struct.pack("!I", 4 + len(fields)) + fields
        try:
            pair[0].sendall(answer + fatal)
        except OSError:
            pass
        with self.lock:
            self.ended += 1
        self._shut(pair)
        return True

    def _lose(self, pair):
        # Said before it happens: the client may answer its own client
        # before this thread runs again.
        with self.lock:
            then_down = self.then_down
            if then_down:
                self.down = True
                others = [p for p in self.conns if p is not pair]
        # The others first: once the client sees this one cut, no other
        # connection may still carry its next statement.
        if then_down:
            for p in others:
                self._shut(p)
        self.lost.set()
        self._shut(pair)
