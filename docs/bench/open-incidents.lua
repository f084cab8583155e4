-- The duty board: how many incidents of each severity are open, and the first 50 open
-- urgent ones (oldest first) with their SLA clocks.
dofile("docs/bench/graphql.lua")
wrk.body = [[{"query":"{ openIncidentCounts { severity open } incidents(scope: OPEN, severity: URGENT, first: 50) { edges { cursor node { id title service warningLevel assignee openedAt sla { clock elapsedMinutes breachDueAt percentUsed } } } pageInfo { hasNextPage endCursor } position } }"}]]
