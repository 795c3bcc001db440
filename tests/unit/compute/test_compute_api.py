"""Compute API in-process: versions, flavors, keypairs, quotas, bad inputs, hypervisors."""

from __future__ import annotations

from compute_testkit import boot, wait_for

from edgefed.drivers.fake import FAIL_MARKER
from edgefed.services.compute.state import ComputeState

C = "/compute/v2.1"


async def test_version_documents_and_negotiation(site, admin_headers):
    r = await site.client.get("/compute")
    ids = [v["id"] for v in r.json()["versions"]]
    assert "v2.1" in ids
    r = await site.client.get(C)
    doc = r.json()["version"]
    assert doc["min_version"] == "2.1" and doc["version"] == "2.96"
    r = await site.client.get(
        f"{C}/flavors", headers={**admin_headers, "OpenStack-API-Version": "compute 2.60"}
    )
    assert r.headers["OpenStack-API-Version"] == "compute 2.60"
    assert "OpenStack-API-Version" in r.headers["Vary"]
    r = await site.client.get(
        f"{C}/flavors", headers={**admin_headers, "OpenStack-API-Version": "compute 2.200"}
    )
    assert r.status_code == 406
    assert "maximum is 2.96" in r.json()["notAcceptable"]["message"]
    r = await site.client.get(
        f"{C}/flavors", headers={**admin_headers, "X-OpenStack-Nova-API-Version": "two"}
    )
    assert r.status_code == 400


async def test_flavor_crud_filters_and_access(site, h):
    r = await site.client.get(f"{C}/flavors/detail?minRam=4096", headers=h)
    assert {f["name"] for f in r.json()["flavors"]} == {"m1.medium", "m1.large", "m1.xlarge"}
    r = await site.client.get(f"{C}/flavors?limit=2", headers=h)
    assert len(r.json()["flavors"]) == 2 and r.json()["flavors_links"]
    body = {
        "flavor": {
            "name": "private",
            "ram": 64,
            "vcpus": 1,
            "disk": 0,
            "os-flavor-access:is_public": False,
            "description": "tiny",
        }
    }
    r = await site.client.post(f"{C}/flavors", json=body, headers=h)
    assert r.status_code == 200, r.text
    flavor = r.json()["flavor"]
    assert flavor["description"] == "tiny" and flavor["extra_specs"] == {}
    r = await site.client.post(f"{C}/flavors", json=body, headers=h)
    assert r.status_code == 409
    r = await site.client.post(
        f"{C}/flavors/{flavor['id']}/os-extra_specs",
        json={"extra_specs": {"hw:cpu_policy": "dedicated"}},
        headers=h,
    )
    assert r.json() == {"extra_specs": {"hw:cpu_policy": "dedicated"}}
    r = await site.client.post(
        f"{C}/flavors/{flavor['id']}/action",
        json={"addTenantAccess": {"tenant": "p1"}},
        headers=h,
    )
    assert r.json()["flavor_access"] == [{"flavor_id": flavor["id"], "tenant_id": "p1"}]
    r = await site.client.get(
        f"{C}/flavors/{flavor['id']}", headers={**h, "OpenStack-API-Version": "compute 2.1"}
    )
    assert "extra_specs" not in r.json()["flavor"] and r.json()["flavor"]["swap"] == ""
    r = await site.client.post(
        f"{C}/flavors", json={"flavor": {"name": "x", "ram": 0, "vcpus": 1, "disk": 0}}, headers=h
    )
    assert r.status_code == 400 and "ram" in r.json()["badRequest"]["message"]
    assert (await site.client.delete(f"{C}/flavors/{flavor['id']}", headers=h)).status_code == 202
    r = await site.client.get(f"{C}/flavors/{flavor['id']}", headers=h)
    assert r.status_code == 404 and "itemNotFound" in r.json()


async def test_keypairs_import_generate_and_duplicates(site, admin_headers):
    v210 = {**admin_headers, "OpenStack-API-Version": "compute 2.10"}
    r = await site.client.post(f"{C}/os-keypairs", json={"keypair": {"name": "gen"}}, headers=v210)
    assert r.status_code == 201, r.text
    generated = r.json()["keypair"]
    assert generated["private_key"].startswith("-----BEGIN") and generated["type"] == "ssh"
    assert len(generated["fingerprint"].split(":")) == 16
    r = await site.client.post(f"{C}/os-keypairs", json={"keypair": {"name": "gen"}}, headers=v210)
    assert r.status_code == 409
    v292 = {**admin_headers, "OpenStack-API-Version": "compute 2.92"}
    r = await site.client.post(f"{C}/os-keypairs", json={"keypair": {"name": "k2"}}, headers=v292)
    assert r.status_code == 400
    r = await site.client.post(
        f"{C}/os-keypairs",
        json={"keypair": {"name": "bad", "public_key": "ssh-rsa not-base64!"}},
        headers=v292,
    )
    assert r.status_code == 400 and "Keypair data is invalid" in r.text
    r = await site.client.post(
        f"{C}/os-keypairs",
        json={"keypair": {"name": "imp", "public_key": generated["public_key"]}},
        headers=v292,
    )
    assert r.status_code == 201
    assert r.json()["keypair"]["fingerprint"] == generated["fingerprint"]
    names = [
        k["keypair"]["name"]
        for k in (await site.client.get(f"{C}/os-keypairs", headers=v292)).json()["keypairs"]
    ]
    assert names == ["gen", "imp"]
    assert (await site.client.delete(f"{C}/os-keypairs/gen", headers=v292)).status_code == 204


async def test_create_server_bad_inputs(site, h, image_id):
    async def create(**server):
        base = {"name": "vm", "imageRef": image_id, "flavorRef": "1", "networks": "auto"}
        r = await site.client.post(f"{C}/servers", json={"server": {**base, **server}}, headers=h)
        return r.status_code, r.text

    assert await create(imageRef="nope") == (
        400,
        '{"badRequest":{"code":400,"message":"Invalid imageRef provided."}}',
    )
    status, text = await create(flavorRef="999")
    assert status == 400 and "Flavor 999 could not be found." in text
    status, text = await create(key_name="missing")
    assert status == 400 and "Invalid key_name provided." in text
    status, text = await create(networks=[{"uuid": "6a3c0c0e-1111-4a4a-8a8a-0123456789ab"}])
    assert (
        status == 400 and "Network 6a3c0c0e-1111-4a4a-8a8a-0123456789ab could not be found" in text
    )
    status, text = await create(user_data="%%%not base64")
    assert status == 400 and "user_data" in text
    status, text = await create(networks=None)
    assert status == 400
    r = await site.client.post(
        f"{C}/servers",
        json={"server": {"name": "vm", "imageRef": image_id, "flavorRef": "1"}},
        headers=h,
    )
    assert r.status_code == 400 and "networks" in r.text
    r = await site.client.get(f"{C}/servers/00000000-0000-0000-0000-000000000000", headers=h)
    assert r.status_code == 404 and "itemNotFound" in r.json()


async def test_quota_exceeded_message_and_limits(site, h, image_id):
    r = await site.client.put(
        f"{C}/os-quota-sets/{(await _project(site, h))}",
        json={"quota_set": {"instances": 1}},
        headers=h,
    )
    assert r.status_code == 200 and r.json()["quota_set"]["instances"] == 1
    first = await boot(site, h, image_id)
    await wait_for(site, h, first["id"], "ACTIVE")
    r = await site.client.post(
        f"{C}/servers",
        json={
            "server": {"name": "vm2", "imageRef": image_id, "flavorRef": "1", "networks": "auto"}
        },
        headers=h,
    )
    assert r.status_code == 403
    assert r.json()["forbidden"]["message"] == (
        "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances"
    )
    limits = (await site.client.get(f"{C}/limits", headers=h)).json()["limits"]["absolute"]
    assert limits["maxTotalInstances"] == 1 and limits["totalInstancesUsed"] == 1
    assert limits["totalRAMUsed"] == 512


async def _project(site, h):
    r = await site.client.get(f"{C}/limits", headers=h)
    assert r.status_code == 200
    ctx = site.app.state.ctx
    token = h["X-Auth-Token"]
    return site.app.state.authenticator.validate(ctx, token).project_id


async def test_no_valid_host_and_driver_failure_go_error(site, h, image_id):
    body = {"flavor": {"name": "huge", "ram": 10**7, "vcpus": 1, "disk": 1}}
    r = await site.client.post(f"{C}/flavors", json=body, headers=h)
    flavor_id = r.json()["flavor"]["id"]
    r = await site.client.put(
        f"{C}/os-quota-sets/{await _project(site, h)}", json={"quota_set": {"ram": -1}}, headers=h
    )
    created = await boot(site, h, image_id, flavorRef=flavor_id)
    server = await wait_for(site, h, created["id"], "ERROR")
    assert server["fault"]["message"].startswith("No valid host was found")
    failing = await boot(site, h, image_id, name=f"x-{FAIL_MARKER}")
    server = await wait_for(site, h, failing["id"], "ERROR")
    assert "fault injection" in server["fault"]["message"]


async def test_hypervisors_reflect_usage(site, h, image_id):
    created = await boot(site, h, image_id, flavorRef="3")
    await wait_for(site, h, created["id"], "ACTIVE")
    v = {**h, "OpenStack-API-Version": "compute 2.87"}
    hyp = (await site.client.get(f"{C}/os-hypervisors/detail", headers=v)).json()["hypervisors"]
    assert hyp[0]["vcpus_used"] == 2 and hyp[0]["memory_mb_used"] == 4096
    assert len(hyp[0]["id"]) == 36
    stats = (await site.client.get(f"{C}/os-hypervisors/statistics", headers=v)).json()
    assert stats["hypervisor_statistics"]["running_vms"] == 1
    r = await site.client.get(f"{C}/os-hypervisors/statistics", headers=h)
    assert r.status_code == 404
    zones = (await site.client.get(f"{C}/os-availability-zone", headers=h)).json()
    assert zones["availabilityZoneInfo"][0]["zoneName"] == "nova"


async def test_actions_metadata_lock_and_snapshot(site, h, image_id):
    created = await boot(site, h, image_id, metadata={"a": "1"})
    sid = created["id"]
    await wait_for(site, h, sid, "ACTIVE")
    r = await site.client.post(f"{C}/servers/{sid}/action", json={"os-start": None}, headers=h)
    assert r.status_code == 409 and "vm_state active" in r.text
    r = await site.client.post(
        f"{C}/servers/{sid}/action", json={"reboot": {"type": "HARD"}}, headers=h
    )
    assert r.status_code == 202
    await wait_for(site, h, sid, "ACTIVE")
    r = await site.client.post(
        f"{C}/servers/{sid}/metadata", json={"metadata": {"b": "2"}}, headers=h
    )
    assert r.json()["metadata"] == {"a": "1", "b": "2"}
    r = await site.client.put(
        f"{C}/servers/{sid}", json={"server": {"name": "renamed", "description": "d"}}, headers=h
    )
    assert r.json()["server"]["name"] == "renamed" and r.json()["server"]["description"] == "d"
    r = await site.client.post(
        f"{C}/servers/{sid}/action", json={"lock": {"locked_reason": "why"}}, headers=h
    )
    shown = (await site.client.get(f"{C}/servers/{sid}", headers=h)).json()["server"]
    assert shown["locked"] is True and shown["locked_reason"] == "why"
    r = await site.client.post(
        f"{C}/servers/{sid}/action", json={"createImage": {"name": "snap"}}, headers=h
    )
    assert r.status_code == 202
    image = r.json()["image_id"]
    await site.app.state.ctx.slots.require(ComputeState).lifecycle.idle()
    from edgefed.store.image import ImageRepository

    snap = await ImageRepository(site.app.state.ctx.store).get(image)
    assert (
        snap is not None and snap.status == "active" and snap.properties["image_type"] == "snapshot"
    )
    actions = (await site.client.get(f"{C}/servers/{sid}/os-instance-actions", headers=h)).json()
    assert [a["action"] for a in actions["instanceActions"]][-1] == "create"
    r = await site.client.get(f"{C}/servers/detail?name=^ren", headers=h)
    assert [s["id"] for s in r.json()["servers"]] == [sid]
    r = await site.client.get(f"{C}/servers/detail?status=SHUTOFF", headers=h)
    assert r.json()["servers"] == []
