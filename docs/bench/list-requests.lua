-- requests(first: 50) narrowed to one department's requests waiting for approval, as an
-- approver's inbox shows them.
dofile("docs/bench/graphql.lua")
wrk.body = [[{"query":"{ requests(first: 50, filter: {status: PENDING_APPROVAL, department: \"財政局\"}) { edges { cursor node { id kind status requester project submittedAt openStep } } pageInfo { hasNextPage endCursor } position } }"}]]
