"""Password hashing runs off the I/O threads: a burst of logins does not hold up other
requests, even with a single I/O thread."""
import concurrent.futures
import threading
import time

import requests

from conftest import Client


def test_logins_do_not_stall_other_requests(make_server):
    # One I/O thread and one hasher thread: if hashing ran on the I/O thread, /healthz
    # would wait behind every queued login.
    s = make_server(THREADS=1, HASHER_THREADS=1)
    c = Client(s)
    user = c.register()
    name, password = user["user"]["username"], user["password"]
    logins = 12
    done = []
    lock = threading.Lock()

    def login(_):
        r = requests.post(s.url + "/api/auth/login/", json={"username": name, "password": password},
                          timeout=60)
        with lock:
            done.append(time.monotonic())
        return r.status_code

    with concurrent.futures.ThreadPoolExecutor(logins) as pool:
        futures = [pool.submit(login, i) for i in range(logins)]
        time.sleep(0.05)  # let the logins reach the server
        health_done = []
        for _ in range(5):
            r = requests.get(s.url + "/healthz", timeout=60)
            assert r.status_code == 200
            health_done.append(time.monotonic())
        statuses = [f.result() for f in futures]
    assert statuses == [200] * logins
    # The health checks all finished while most logins were still queued for the hasher.
    assert max(health_done) < sorted(done)[logins // 2], (health_done, sorted(done))
