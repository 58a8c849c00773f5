from tests.support import soapkit
from tests.support.server import ServerProcess


def test_health_reports_schema(server: ServerProcess) -> None:
    import httpx

    r = httpx.get(f"{server.url}/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_soap_dispatch_round_trip(server: ServerProcess) -> None:
    res = soapkit.dispatch(server.soap_url, ["smoke@example.com", "nope"])
    assert res.status == 200
    assert res.batch_errors == [
        {"Code": 3001, "Details": "nope", "Index": 1, "Message": "The email address is not valid."}
    ]
    assert res.headers["TrackingId"] == res.header_tracking_id
