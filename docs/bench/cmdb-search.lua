-- configurationItems(first: 50) narrowed by three attributes, as a custom CMDB view asks.
dofile("docs/bench/graphql.lua")
wrk.body = [[{"query":"{ configurationItems(first: 50, filter: {attributes: [{name: \"os_image\", value: \"rhel-9.4\"}, {name: \"tier\", value: \"gold\"}, {name: \"patch_level\", value: \"2026.03\"}]}) { edges { cursor node { id name status ipAddresses department project lease { end } } } pageInfo { hasNextPage endCursor } position } }"}]]
