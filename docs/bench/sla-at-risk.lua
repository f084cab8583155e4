-- The SLA-at-risk view: the 50 clocks that will breach soonest, with their incidents.
dofile("docs/bench/graphql.lua")
wrk.body = [[{"query":"{ slaAtRisk(first: 50) { edges { cursor node { clock breachDueAt incident { id title severity warningLevel assignee } } } pageInfo { hasNextPage endCursor } position } }"}]]
