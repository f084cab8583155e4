-- usage for one month grouped by department (all 20), as an analyst's monthly report asks.
-- USAGE_GROUP=PROJECT groups by project (all 200) instead.
dofile("docs/bench/graphql.lua")
local group = os.getenv("USAGE_GROUP") or "DEPARTMENT"
wrk.body = [[{"query":"{ usage(groupBy: ]] .. group .. [[, from: \"2026-06-01T00:00:00Z\", to: \"2026-07-01T00:00:00Z\") { department project cpuCoreHours memoryGibHours storageGibDays resources peak { cpuCores memoryGib storageGib } } }"}]]
