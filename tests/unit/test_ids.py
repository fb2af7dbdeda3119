import threading

from aiservice.ids import uuid7, uuid_from_text


def test_uuid7_is_version_7_and_increasing():
    ids = [uuid7() for _ in range(20000)]
    assert all(i.version == 7 and i.variant == "specified in RFC 4122" for i in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_uuid7_is_unique_across_threads():
    found = []

    def make():
        found.extend(uuid7() for _ in range(5000))

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(found)) == 20000


def test_uuid_from_text():
    u = uuid7()
    assert uuid_from_text(str(u)) == u
    assert uuid_from_text("nope") is None
    assert uuid_from_text("") is None
