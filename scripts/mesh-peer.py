"""One node of scripts/mesh-lab: counts the bytes it receives from every peer and sends
to every other address as fast as TCP allows, from START for SECONDS (the first second
and the last half are not counted).

Usage: mesh-peer.py MY_ADDR OTHER_ADDRS(comma-separated) SECONDS START(unix time)
Prints: "ADDR received MB/s".
"""
import socket
import sys
import threading
import time

PORT = 5001


def main():
    me, others, seconds, start = sys.argv[1], sys.argv[2].split(","), float(sys.argv[3]), float(sys.argv[4])
    stop = start + seconds
    counted = [0]
    lock = threading.Lock()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((me, PORT))
    server.listen(256)

    def receive(conn):
        n = 0
        while True:
            data = conn.recv(1 << 16)
            if not data:
                break
            if start + 1 <= time.time() <= stop - 0.5:
                n += len(data)
        with lock:
            counted[0] += n

    def accept():
        while True:
            conn, _ = server.accept()
            threading.Thread(target=receive, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    while time.time() < start:
        time.sleep(0.01)
    block = b"x" * (1 << 16)

    def send(addr):
        conn = socket.create_connection((addr, PORT))
        while time.time() < stop:
            conn.sendall(block)
        conn.close()

    senders = [threading.Thread(target=send, args=(a,)) for a in others if a]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    time.sleep(1)
    print(me, "received", round(counted[0] / (seconds - 1.5) / 1e6, 3), "MB/s")


if __name__ == "__main__":
    main()
