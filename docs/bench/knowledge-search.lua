-- Knowledge search: two Chinese words, the best 20 articles.
dofile("docs/bench/graphql.lua")
wrk.body = [[{"query":"{ articles(query: \"空調 故障\", first: 20) { articles { id title tags version } position } }"}]]
