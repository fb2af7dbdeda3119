import webtest
from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from aiservice.api.app import create_app
from aiservice.config import Settings


def test_healthz(app):
    assert app.get("/healthz").json == {"status": "ok"}


def test_readyz_when_migrated(app):
    assert app.get("/readyz").json["status"] == "ready"


def test_readyz_is_503_before_migrations(empty_database, schemas):
    settings = Settings(database_url=empty_database())
    client = webtest.TestApp(create_app(settings, schemas=schemas))
    body = client.get("/readyz", status=503).json
    assert body["error"]["code"] == "not_ready"
    assert {"check": "migrations", "ok": False} in body["error"]["details"]
    client.app.store.db.close()


def test_readyz_is_503_when_the_database_is_unreachable(schemas):
    settings = Settings(database_url="postgresql://x:pw@127.0.0.1:1/none", db_pool_timeout=0.5, db_connect_timeout=1)
    client = webtest.TestApp(create_app(settings, schemas=schemas))
    assert client.get("/readyz", status=503).json["error"]["code"] == "not_ready"
    assert client.get("/healthz").json == {"status": "ok"}
    client.app.store.db.close()


def test_request_id_is_echoed_or_made(app):
    assert app.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made = app.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["X-Request-ID"]
    assert made and " " not in made


def test_openapi_lists_every_route_and_its_schemas_resolve(app):
    doc = app.get("/api/v1/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    expected = {
        ("/api/v1/jobs", "post"), ("/api/v1/jobs", "get"), ("/api/v1/jobs/batch", "post"),
        ("/api/v1/jobs/claim", "post"), ("/api/v1/jobs/{id}", "get"),
        ("/api/v1/jobs/{id}/heartbeat", "post"), ("/api/v1/jobs/{id}/complete", "post"),
        ("/api/v1/jobs/{id}/fail", "post"), ("/api/v1/jobs/{id}/retry", "post"),
        ("/api/v1/jobs/{id}/cancel", "post"), ("/api/v1/batches/{id}", "get"), ("/api/v1/stats", "get"), ("/api/v1/providers/status", "get"), ("/metrics", "get"),
        ("/healthz", "get"), ("/readyz", "get"),
    }
    assert {(p, m) for p, ops in doc["paths"].items() for m in ops} == expected
    components = doc["components"]["schemas"]
    refs = []

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc["paths"])
    assert refs and all(r.removeprefix("#/components/schemas/") in components for r in refs)
    for schema in components.values():
        validator_for(schema, default=Draft202012Validator).check_schema(schema)
    assert "jobs.create" in components and "tasks.llm_chat" in components
