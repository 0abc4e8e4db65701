"""The test-wide guard itself: public addresses and names are refused, loopback still works."""

import socket

import pytest


def test_public_connections_and_lookups_are_refused() -> None:
    with socket.socket() as s, pytest.raises(ConnectionRefusedError, match="network guard"):
        s.connect(("1.1.1.1", 53))
    with pytest.raises(OSError, match="network guard"):
        socket.getaddrinfo("one.one.one.one", 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(ConnectionRefusedError):
        s.sendto(b"x", ("8.8.8.8", 53))


def test_loopback_still_works() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=2):
            conn, _ = server.accept()
            conn.close()
    assert socket.getaddrinfo("localhost", 80)


def test_ultralytics_believes_it_is_offline() -> None:
    from models.offline import ultralytics_module

    ultralytics_module()
    from ultralytics.utils import ONLINE, SETTINGS, is_online

    assert not ONLINE and not is_online() and SETTINGS["sync"] is False
