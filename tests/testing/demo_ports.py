#!/usr/bin/env python3
"""Prints free loopback ports for a quickstart run in a test: the scheduler,
its metrics, the first of two consecutive agent metrics ports, and one more
(e.g. for Prometheus). The ports are free when printed; a test uses them at
once."""
import socket


def bound(port):
    s = socket.socket()
    s.bind(("127.0.0.1", port))
    return s


def main():
    keep = [bound(0), bound(0)]
    for _ in range(100):
        a = bound(0)
        try:
            b = bound(a.getsockname()[1] + 1)
        except OSError:
            a.close()
            continue
        keep += [a, b]
        break
    else:
        raise SystemExit("no free pair of ports")
    keep.append(bound(0))
    print(*(keep[i].getsockname()[1] for i in (0, 1, 2, 4)))


if __name__ == "__main__":
    main()
