-- wrk script for deploy/bench.sh SESSIONS=1: rotate through a file of browser-session cookie
-- values (one per line), sending each as `Cookie: __Host-sidecar-session=<value>`, and print
-- the same RESULT line as the shared harness's wrk_tokens.lua, so both paths are measured the
-- same way. usage: wrk ... -s deploy/wrk_cookies.lua URL -- /path/to/cookies.txt

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("tid", counter)
   table.insert(threads, thread)
end

local reqs = {}
local n = 0
local i = 0

function init(args)
   local path = args[1]
   if path == nil or path == "" then
      error("wrk_cookies.lua: pass the cookie file after --")
   end
   for line in io.lines(path) do
      if #line > 0 then
         n = n + 1
         reqs[n] = wrk.format("GET", wrk.path, { ["Cookie"] = "__Host-sidecar-session=" .. line })
      end
   end
   if n == 0 then
      error("wrk_cookies.lua: no cookies in " .. path)
   end
   i = ((tid or 1) - 1) * 7919 % n
end

function request()
   i = i + 1
   if i > n then i = 1 end
   return reqs[i]
end

function done(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "RESULT requests=%d duration_s=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f " ..
      "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency.max, latency.mean,
      e.connect, e.read, e.write, e.status, e.timeout))
end
