"""Property test: whatever a client sends, the app never answers with a 5xx."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TOKEN = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
methods = st.one_of(
    st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"]),
    st.text(alphabet=TOKEN, min_size=1, max_size=12),
)
segments = st.one_of(
    st.sampled_from(["article", "article1", "article01", "healthz", "readyz", "metrics", ""]),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/?#"), max_size=20),
)
paths = st.one_of(
    st.lists(segments, max_size=5).map(lambda parts: "/" + "/".join(parts)),
    # Near misses of the article routes, where id parsing and lookup happen.
    st.tuples(st.sampled_from(["/article/", "/article"]), segments).map("".join),
)
queries = st.text(max_size=60)
header_values = st.text(alphabet=string.printable.strip() + " ", max_size=40)
headers = st.dictionaries(
    st.text(alphabet=TOKEN, min_size=1, max_size=20), header_values, max_size=5
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(method=methods, path=paths, query=queries, hdrs=headers)
def test_no_input_gives_a_server_error(client, method, path, query, hdrs) -> None:
    # The path as the server hands it over (decoded; a "?" in it would start the query).
    response = client.open(path + "?" + query.replace("#", ""), method=method, headers=hdrs)
    assert response.status_code < 500, (method, path, query, hdrs, response.status_code)
    assert response.headers["X-Served-By"] == "pod-under-test"
