-- The duty board: how many incidents of each severity are open, and the first 50 open
-- ones, most severe first and oldest first within a severity (set SEVERITY=URGENT to
-- narrow to one), with their SLA clocks.
dofile("docs/bench/graphql.lua")
local severity = os.getenv("SEVERITY")
local narrow = severity and (", severity: " .. severity) or ""
wrk.body = [[{"query":"{ openIncidentCounts { severity open } incidents(scope: OPEN]] .. narrow .. [[, first: 50) { edges { cursor node { id title service severity warningLevel assignee openedAt sla { clock elapsedMinutes breachDueAt percentUsed } } } pageInfo { hasNextPage endCursor } position } }"}]]
