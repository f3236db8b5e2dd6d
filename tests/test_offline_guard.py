"""The suite's own network guard (conftest.py): loopback works, nothing else is allowed."""
import socket

import conftest


def test_loopback_connections_work():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            connection, _ = server.accept()
            connection.close()


def test_only_loopback_addresses_pass_the_guard():
    assert conftest._is_loopback(("127.0.0.1", 80))
    assert conftest._is_loopback(("::1", 80, 0, 0))
    assert conftest._is_loopback(("localhost", 80))
    # Classified, never contacted:
    assert not conftest._is_loopback(("192.0.2.1", 80))
    assert not conftest._is_loopback(("storage.googleapis.com", 443))
