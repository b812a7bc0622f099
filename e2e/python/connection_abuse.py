"""Opens the connections a careless or hostile client leaves behind, then reports which the
server closed: idle TCP without TLS, TLS sessions that never send a request, requests whose
headers trickle in. Usage: connection_abuse.py PORT TCP_COUNT TLS_COUNT WAIT_SECONDS.
Prints one JSON line: {"tcp_closed": n, "tls_closed": n, "slow_headers_closed": bool}."""
import json
import select
import socket
import ssl
import sys
import time

port, tcp_count, tls_count, wait = (int(a) for a in sys.argv[1:5])
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE


def closed(sock):
    """Whether the peer closed `sock` (a read returns nothing or fails)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        if not poller.poll(0):
            return False
        return sock.recv(1) == b""
    except (OSError, ssl.SSLError):
        return True


tcp = [socket.create_connection(("127.0.0.1", port)) for _ in range(tcp_count)]
tls = [context.wrap_socket(socket.create_connection(("127.0.0.1", port))) for _ in range(tls_count)]
slow = context.wrap_socket(socket.create_connection(("127.0.0.1", port)))
slow.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n")
deadline = time.time() + wait
while time.time() < deadline:
    try:
        slow.sendall(b"X")  # a header byte now and then, never the end of the headers
    except OSError:
        break
    time.sleep(0.5)
print(json.dumps({
    "tcp_closed": sum(closed(s) for s in tcp),
    "tls_closed": sum(closed(s) for s in tls),
    "slow_headers_closed": closed(slow),
}))
