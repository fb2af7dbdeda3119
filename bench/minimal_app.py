"""The ceiling for single creates: the least a Falcon app under the same gunicorn
settings can do per job: parse the JSON body, one INSERT, answer the id."""

import json
import os
import threading
import uuid

import falcon
from psycopg_pool import ConnectionPool

_pool = None
_lock = threading.Lock()


def pool() -> ConnectionPool:
    global _pool
    with _lock:
        if _pool is None:  # after the fork, like the service
            _pool = ConnectionPool(os.environ["DATABASE_URL"], min_size=1, max_size=int(os.environ.get("DB_POOL_SIZE", "8")), open=True)
    return _pool


class Jobs:
    def on_post(self, req, resp):
        body = json.loads(req.bounded_stream.read())
        job_id = uuid.uuid4()
        with pool().connection() as conn:
            conn.execute("INSERT INTO jobs (id, owner_service, task_type, model_profile, input) "
                         "VALUES (%s, %s, %s, %s, %s::jsonb)",
                         [job_id, body["owner_service"], body["task_type"], body["model_profile"],
                          json.dumps(body["input"])])
        resp.status = falcon.HTTP_201
        resp.media = {"id": str(job_id)}


app = falcon.App()
app.add_route("/api/v1/jobs", Jobs())
