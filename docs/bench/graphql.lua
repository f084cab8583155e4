-- Shared by the wrk scripts here: POSTs one GraphQL operation with the bearer token from
-- $OPSLEDGER_TOKEN, and counts answers that are not a clean 200 (HTTP errors, or GraphQL
-- `errors`), printed after wrk's own report. A run with errors does not count.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  errors = 0
end

function response(status, headers, body)
  if status ~= 200 or body:find('"errors"', 1, true) then
    errors = errors + 1
  end
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + thread:get("errors")
  end
  io.write(string.format("GraphQL errors: %d\n", total))
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("OPSLEDGER_TOKEN") or "")
