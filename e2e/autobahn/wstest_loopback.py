# Python 2.7 (run with .venv/bin/python): starts `wstest` with every listening
# socket bound to 127.0.0.1 (or $AUTOBAHN_BIND_HOST) instead of all interfaces.
# wstest's server modes (fuzzingserver, echoserver, testeeserver) and its
# embedded web server otherwise listen on 0.0.0.0.
import os
import sys

from twisted.internet import posixbase

BIND_HOST = os.environ.get("AUTOBAHN_BIND_HOST", "127.0.0.1")

_listen_tcp = posixbase.PosixReactorBase.listenTCP
_listen_ssl = posixbase.PosixReactorBase.listenSSL


def _listen_tcp_local(self, port, factory, backlog=50, interface=""):
    return _listen_tcp(self, port, factory, backlog, interface or BIND_HOST)


def _listen_ssl_local(self, port, factory, context_factory, backlog=50, interface=""):
    return _listen_ssl(self, port, factory, context_factory, backlog, interface or BIND_HOST)


posixbase.PosixReactorBase.listenTCP = _listen_tcp_local
posixbase.PosixReactorBase.listenSSL = _listen_ssl_local

# Must come after the patch: importing wstest installs the reactor.
from autobahntestsuite.wstest import run  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "wstest"
    sys.exit(run())
