-- submitRequest for a 4-core VM from the demo's 標準虛擬機 item (load the demo first):
-- each call is a new request, durably appended before it answers.
dofile("docs/bench/graphql.lua")
wrk.body = [[{"query":"mutation { submitRequest(input: {itemId: \"catalog_item-163ed0b0-d44d-5d81-a4e6-749cae11f2a6\", kind: NEW_RESOURCE, configuration: {cpu: 4, memory_gb: 16, os: \"linux\", image: \"rhel-9.4\"}, project: \"電子公文交換\", periodStart: \"2026-12-01\", periodEnd: \"2027-06-01\"}) { id position } }"}]]
