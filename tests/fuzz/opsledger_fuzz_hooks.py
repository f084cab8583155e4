"""Schemathesis hooks for fuzzing the OpsLedger GraphQL API (loaded by run.sh through
SCHEMATHESIS_HOOKS).

Two things are configured here:

* strategies for the custom scalars schemathesis has none for (`NaiveDate`, `JSON`);
  `DateTime` is built in;
* the check `opsledger_error_contract`, which replaces schemathesis' own
  `not_a_server_error`. That built-in check also counts every GraphQL error that has a
  `path` and no code it knows (Apollo's `BAD_USER_INPUT`, ...) as a server error, so
  OpsLedger's ordinary refusals (`NOT_FOUND`, `FORBIDDEN`, `CONFLICT`, `UNAUTHENTICATED`)
  would all be reported. This check fails on what is really a server fault: an HTTP 5xx,
  a body that is not a GraphQL response, an error without `extensions.code`, an error
  coded `INTERNAL`, or a code outside the documented set.
"""

from __future__ import annotations

import datetime
import json

import graphql
import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

# The codes DESIGN.md documents ("GraphQL conventions"); INTERNAL is a server fault.
CLIENT_CODES = frozenset(
    {
        "UNAUTHENTICATED",
        "FORBIDDEN",
        "BAD_USER_INPUT",
        "NOT_FOUND",
        "CONFLICT",
        "GRAPHQL_PARSE_FAILED",
        "GRAPHQL_VALIDATION_FAILED",
    }
)
SERVER_CODES = frozenset({"INTERNAL"})

# --- custom scalars -----------------------------------------------------------------

# Mostly dates near today (the ones the API accepts), sometimes any date at all.
_near = st.dates(
    min_value=datetime.date(2000, 1, 1),
    max_value=datetime.date(2100, 12, 31),
)
schemathesis.graphql.scalar(
    "NaiveDate", st.one_of(_near, _near, st.dates()).map(str).map(nodes.String)
)


def _field(name: str, value: graphql.ValueNode) -> graphql.ObjectFieldNode:
    return graphql.ObjectFieldNode(name=graphql.NameNode(value=name), value=value)


_names = st.from_regex(r"\A[_A-Za-z][_0-9A-Za-z]{0,15}\Z")
_leaves = st.one_of(
    st.just(nodes.Null),
    st.booleans().map(nodes.Boolean),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(nodes.Int),
    st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
    st.text(max_size=40).map(nodes.String),
)


def _objects(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.dictionaries(_names, children, max_size=6).map(
        lambda d: nodes.Object([_field(k, v) for k, v in d.items()])
    )


_json = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5).map(nodes.List), _objects(children)
    ),
    max_leaves=20,
)
# JSON arguments are mostly objects (configuration, attributes, definitions).
schemathesis.graphql.scalar("JSON", st.one_of(_objects(_json), _json))

# --- the check ----------------------------------------------------------------------


def _body(response) -> str:
    text = response.text if isinstance(response.text, str) else repr(response.content)
    return text if len(text) <= 2000 else text[:2000] + "…"


@schemathesis.check
def opsledger_error_contract(ctx, response, case):
    """No 5xx; a GraphQL response body; every error coded, none INTERNAL."""
    status = response.status_code
    if status >= 500:
        raise AssertionError(f"server error: HTTP {status}\n{_body(response)}")
    try:
        payload = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(
            f"HTTP {status} with a body that is not JSON ({exc})\n{_body(response)}"
        ) from None
    if not isinstance(payload, dict) or not ("data" in payload or "errors" in payload):
        raise AssertionError(
            f"HTTP {status}: not a GraphQL response (no data, no errors)\n{_body(response)}"
        )
    for error in payload.get("errors") or []:
        extensions = error.get("extensions") if isinstance(error, dict) else None
        code = extensions.get("code") if isinstance(extensions, dict) else None
        shown = json.dumps(error, ensure_ascii=False)[:1000]
        if code is None:
            raise AssertionError(f"an error without extensions.code: {shown}")
        if code in SERVER_CODES:
            raise AssertionError(f"an error coded {code}: {shown}")
        if code not in CLIENT_CODES:
            raise AssertionError(f"an error with an undocumented code {code!r}: {shown}")
    return None
