-- wrk script: sends `Authorization: DPoP <token>` and a fresh DPoP proof per request, read
-- from the file given after `--` (first line: token; then one proof per line). Without a
-- file it sends plain GETs. A second argument `close` asks for a new connection per request
-- (`Connection: close`: over TLS, a handshake each). Prints one JSON line with req/s, p50,
-- p99 and non-2xx.
local token, proofs, next, close = nil, {}, 0, false

function init(args)
  close = args[2] == "close"
  if args[1] then
    local f = assert(io.open(args[1], "r"))
    token = f:read("*l")
    for line in f:lines() do proofs[#proofs + 1] = line end
    f:close()
  end
end

function request()
  local headers = {}
  if close then headers["Connection"] = "close" end
  if not token then return wrk.format("GET", nil, headers) end
  next = next + 1
  headers["Authorization"] = "DPoP " .. token
  headers["DPoP"] = proofs[next] or "exhausted"
  return wrk.format("GET", nil, headers)
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format('{"requests":%d,"rps":%.0f,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.requests / seconds, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
