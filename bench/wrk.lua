-- wrk script: sends `Authorization: DPoP <token>` and fresh proof headers per request, read
-- from the file given after `--` (first line: the token; then one request's headers per line:
-- a bare DPoP proof, or `Name: value` fields separated by tabs, e.g. a session signature's
-- `Signature-Input` and `Signature`). Without a file (or with `-`) it sends plain requests.
-- Further arguments: `close` asks for a new connection per request (`Connection: close`:
-- over TLS, a handshake each); `post2k` sends POSTs with a 2 KiB body. Prints one JSON line
-- with req/s, p50, p99 and non-2xx.
local token, lines, next, close, body = nil, {}, 0, false, nil

function init(args)
  for i = 2, #args do
    if args[i] == "close" then close = true end
    if args[i] == "post2k" then body = string.rep("7", 2048) end
  end
  if args[1] and args[1] ~= "-" then
    local f = assert(io.open(args[1], "r"))
    token = f:read("*l")
    for line in f:lines() do lines[#lines + 1] = line end
    f:close()
  end
end

function request()
  local headers = {}
  if close then headers["Connection"] = "close" end
  local method = body and "POST" or "GET"
  if not token then return wrk.format(method, nil, headers, body) end
  next = next + 1
  headers["Authorization"] = "DPoP " .. token
  local line = lines[next] or "exhausted"
  if not line:find(": ", 1, true) then line = "DPoP: " .. line end
  for field in line:gmatch("[^\t]+") do
    local name, value = field:match("^([^:]+): (.*)$")
    if name then headers[name] = value end
  end
  return wrk.format(method, nil, headers, body)
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  io.write(string.format('{"requests":%d,"rps":%.0f,"p50_us":%d,"p99_us":%d,"non2xx":%d,"errors":%d}\n',
    summary.requests, summary.requests / seconds, latency:percentile(50), latency:percentile(99),
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
