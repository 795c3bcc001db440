"""Whatever JSON arrives at POST /v3/auth/tokens, the answer is a 4xx (or 201), never a 5xx."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
names = st.sampled_from(["admin", "ghost", "", "Default", "default", "admin-secret"])
user_refs = st.fixed_dictionaries(
    {},
    optional={
        "id": names | json_values,
        "name": names | json_values,
        "password": names | json_values,
        "domain": st.fixed_dictionaries({}, optional={"id": names, "name": names}) | json_values,
    },
)
scopes = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "project": st.fixed_dictionaries(
                {}, optional={"id": names, "name": names, "domain": json_values}
            )
        }
    ),
    st.fixed_dictionaries(
        {"domain": st.fixed_dictionaries({}, optional={"id": names, "name": names})}
    ),
    st.fixed_dictionaries({"system": json_values}),
)
method_lists = st.lists(
    st.sampled_from(["password", "token", "application_credential", "x"]), max_size=2
)
app_credentials = st.fixed_dictionaries(
    {},
    optional={"id": json_values, "name": json_values, "secret": json_values, "user": user_refs},
)
auth_bodies = st.fixed_dictionaries(
    {
        "auth": st.fixed_dictionaries(
            {
                "identity": st.fixed_dictionaries(
                    {"methods": method_lists | json_values},
                    optional={
                        "password": st.fixed_dictionaries({}, optional={"user": user_refs})
                        | json_values,
                        "token": st.fixed_dictionaries({}, optional={"id": json_values}),
                        "application_credential": app_credentials,
                    },
                )
                | json_values
            },
            optional={"scope": scopes},
        )
        | json_values
    }
) | json_values  # fmt: skip


async def test_token_requests_never_5xx(site):
    seen: set[int] = set()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=auth_bodies)
    def generate(body):
        bodies.append(body)

    # Always among them, whatever the draw: a malformed body (400) and a well-formed one
    # with a wrong password (401), so that both kinds of refusal are exercised.
    bodies: list[object] = [
        {"auth": {"identity": {"methods": ["password"], "password": "nope"}}},
        {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {"name": "admin", "domain": {"id": "default"}, "password": "x"}
                    },
                }
            }
        },
    ]
    generate()
    for body in bodies:
        r = await site.client.post(
            "/identity/v3/auth/tokens",
            content=orjson.dumps(body),
            headers={"content-type": "application/json"},
        )
        assert r.status_code < 500, (body, r.text)
        assert r.status_code in (201, 400, 401), (body, r.status_code, r.text)
        seen.add(r.status_code)
    assert {400, 401} <= seen
