"""``/v1/alerts/enrich`` with Wazuh alerts written for these tests."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from iocscope.api.schemas import AlertResponse
from tests.api.conftest import MALICIOUS_IP, ApiEnv


def sshd_alert(source_ip: str = MALICIOUS_IP) -> dict[str, Any]:
    """A Wazuh 4.x alert of rule 5710 (sshd: attempt to log in with a non-existent user)."""
    return {
        "timestamp": "2024-06-03T07:12:44.118+0000",
        "rule": {
            "level": 5,
            "description": "sshd: Attempt to login using a non-existent user",
            "id": "5710",
            "groups": ["syslog", "sshd", "authentication_failed", "invalid_login"],
        },
        "agent": {"id": "004", "name": "bastion-01", "ip": "10.40.1.4"},
        "manager": {"name": "wazuh-manager-01"},
        "id": "1717398764.40211",
        "full_log": (
            f"Jun  3 07:12:43 bastion-01 sshd[30211]: Invalid user oracle from {source_ip} "
            "port 40122"
        ),
        "decoder": {"parent": "sshd", "name": "sshd"},
        "data": {"srcip": source_ip, "srcport": "40122", "srcuser": "oracle"},
        "location": "/var/log/auth.log",
    }


async def test_sshd_alert_source_is_malicious(client: httpx.AsyncClient, env: ApiEnv) -> None:
    response = await client.post("/v1/alerts/enrich", json=sshd_alert(), headers=env.headers)
    body = response.json()
    AlertResponse.model_validate(body)
    assert response.status_code == 200
    assert body["alert_id"] == "1717398764.40211"
    assert body["rule_id"] == "5710"
    assert body["own_event"] is False
    by_value = {record["value"]: record for record in body["results"]}
    assert by_value[MALICIOUS_IP]["verdict"] == "malicious"
    assert by_value[MALICIOUS_IP]["alert"]["field"] == "data.srcip"
    assert by_value[MALICIOUS_IP]["alert"]["agent_name"] == "bastion-01"


async def test_agent_address_is_not_enriched(client: httpx.AsyncClient, env: ApiEnv) -> None:
    body = (await client.post("/v1/alerts/enrich", json=sshd_alert(), headers=env.headers)).json()
    assert all(record["public"] for record in body["results"])
    assert "10.40.1.4" not in {record["value"] for record in body["results"]}


async def test_active_response_message_is_unwrapped(client: httpx.AsyncClient, env: ApiEnv) -> None:
    message = {
        "version": 1,
        "origin": {"name": "node01", "module": "wazuh-execd"},
        "command": "add",
        "parameters": {"extra_args": [], "alert": sshd_alert(), "program": "active-response"},
    }
    body = (await client.post("/v1/alerts/enrich", json=message, headers=env.headers)).json()
    assert body["rule_id"] == "5710"
    assert MALICIOUS_IP in {record["value"] for record in body["results"]}


async def test_own_event_yields_nothing(client: httpx.AsyncClient, env: ApiEnv) -> None:
    alert = sshd_alert()
    alert["data"]["integration"] = "iocscope"
    alert["location"] = "iocscope"  # the location of every event iocscope sends
    body = (await client.post("/v1/alerts/enrich", json=alert, headers=env.headers)).json()
    assert body["own_event"] is True
    assert body["results"] == []


@pytest.mark.parametrize("alert", [{}, {"hello": "world"}, {"parameters": {"alert": "text"}}])
async def test_non_alert_is_422(
    client: httpx.AsyncClient, env: ApiEnv, alert: dict[str, Any]
) -> None:
    response = await client.post("/v1/alerts/enrich", json=alert, headers=env.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_alert"
    assert response.json()["detail"] == (
        "the body is not a Wazuh alert: expected a JSON object with a rule, data or full_log "
        "field, or an active-response message with parameters.alert"
    )


async def test_json_array_is_422(client: httpx.AsyncClient, env: ApiEnv) -> None:
    response = await client.post("/v1/alerts/enrich", json=[sshd_alert()], headers=env.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"
