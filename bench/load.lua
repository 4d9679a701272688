-- load.lua — the wrk script of bench/run. It replays a pool of prepared
-- requests (a Lua data file written by bench/run) instead of one request over
-- and over, so that scripd's caches see many subjects, clients and tokens.
--
--   wrk -s bench/load.lua URL -- DATAFILE NTHREADS [LIMIT]
--   LIMIT: use only the first LIMIT entries of the data file (bench/run --instructions)
--   BENCH_WRK_OUT=FILE: where done() writes its JSON summary
--   BENCH_WRK_RATE=N: send N requests/s in all, on a fixed schedule, instead of
--     each connection's next request as soon as its answer came (see delay())
--
-- The data file returns {method=, path=, mode=, ok=, entries={{auth=, body=}...}}.
-- mode "cycle": each thread takes every NTHREADS-th entry and cycles through them
-- (all of them when there are fewer entries than threads).
-- mode "chain": the entries are grants ({auth=, rt=}); each redemption hands back
-- the grant's next refresh token, which goes to the back of the thread's queue.
-- A refresh token is never sent twice (scrip would revoke the grant as replayed).
-- ok: a Lua pattern a successful answer's body must contain.

local threads = {}
local counter = 0

function setup(thread)
	counter = counter + 1
	thread:set("tid", counter)
	table.insert(threads, thread)
end

local reqs, n, i = {}, 0, 0
local queue, qhead, qtail = {}, 1, 0
local mode, ok_pattern, method, path, auth
bad = 0   -- answers without the success marker (read back by done())
lost = 0  -- chain mode: grants dropped after a failed redemption
empty = 0 -- chain mode: requests sent with the queue empty
late = 0  -- paced: requests sent more than 1 ms after their time (no connection was free)
late_ms = 0 -- paced: the sum of those delays

local function urlencode(s)
	return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

function init(args)
	local data = dofile(args[1])
	local nthreads = tonumber(args[2]) or 1
	local limit = tonumber(args[3] or "")
	thread_count = nthreads
	mode, ok_pattern, method, path = data.mode, data.ok, data.method, data.path
	-- A cycle pool smaller than the threads (/jwks has one request) is
	-- shared whole: a thread left with nothing to send would hold its
	-- connections silent until scripd's header_timeout closed them, which
	-- wrk counts as read errors. Chains are never shared (a refresh token
	-- is presented once).
	local share = mode ~= "chain" and #data.entries < nthreads
	for k, e in ipairs(data.entries) do
		if limit and k > limit then break end
		if share or (k - 1) % nthreads == tid - 1 then
			if mode == "chain" then
				auth = e.auth -- one client holds every grant
				qtail = qtail + 1
				queue[qtail] = e.rt
			else
				local headers = {}
				if e.auth then headers["Authorization"] = e.auth end
				if e.body then headers["Content-Type"] = "application/x-www-form-urlencoded" end
				n = n + 1
				reqs[n] = wrk.format(method, path, headers, e.body)
			end
		end
	end
	assert(mode == "chain" or n > 0, "load.lua: no request for thread " .. tid)
	-- Threads start at different places of their slices.
	i = (tid * 7919) % math.max(n, 1)
end

function request()
	if mode == "chain" then
		local rt = "empty-queue"
		if qhead <= qtail then
			rt = queue[qhead]
			queue[qhead] = nil
			qhead = qhead + 1
		else
			empty = empty + 1
		end
		return wrk.format("POST", path, {["Authorization"] = auth,
			["Content-Type"] = "application/x-www-form-urlencoded"},
			"grant_type=refresh_token&refresh_token=" .. urlencode(rt))
	end
	i = i + 1
	if i > n then i = 1 end
	return reqs[i]
end

-- Paced (BENCH_WRK_RATE): each thread sends its share of the rate on a
-- fixed schedule, one request every 1/share seconds, whatever the answers
-- take; wrk calls delay() before each request and holds it for the
-- milliseconds returned. A request whose time has passed goes at once and
-- counts as late: wrk measures latency from the send, so a run with many
-- late requests understates it (every connection was busy: saturation).
local rate = tonumber(os.getenv("BENCH_WRK_RATE") or "")
if rate and rate > 0 then
	local ffi = require("ffi")
	ffi.cdef[[
		typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
		int clock_gettime(int clk, bench_timespec *ts);
	]]
	local ts = ffi.new("bench_timespec")
	local function now_us()
		ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
		return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1e3
	end
	local interval_us, next_us
	function delay()
		local now = now_us()
		if not next_us then
			-- threads start a fraction of an interval apart
			interval_us = 1e6 * thread_count / rate
			next_us = now + interval_us * (tid - 1) / thread_count
		end
		local at = next_us
		next_us = next_us + interval_us
		if now > at + 1000 then
			late = late + 1
			late_ms = late_ms + (now - at) / 1000
			return 0
		end
		return math.max(0, math.floor((at - now) / 1000))
	end
end

function response(status, headers, body)
	if mode == "chain" then
		local rt = status == 200 and body:match('"refresh_token"%s*:%s*"([^"]+)"')
		if rt then
			qtail = qtail + 1
			queue[qtail] = rt
		else
			lost = lost + 1
			bad = bad + 1
		end
		return
	end
	if status ~= 200 or not body:find(ok_pattern, 1, true) then
		bad = bad + 1
	end
end

function done(summary, latency, requests)
	local out = os.getenv("BENCH_WRK_OUT")
	if not out then return end
	local b, l, e, lt, ltms = 0, 0, 0, 0, 0
	for _, t in ipairs(threads) do
		b = b + (tonumber(t:get("bad")) or 0)
		l = l + (tonumber(t:get("lost")) or 0)
		e = e + (tonumber(t:get("empty")) or 0)
		lt = lt + (tonumber(t:get("late")) or 0)
		ltms = ltms + (tonumber(t:get("late_ms")) or 0)
	end
	local f = assert(io.open(out, "w"))
	local err = summary.errors
	f:write(string.format(
		'{"requests":%d,"duration_us":%d,"bytes":%d,' ..
		'"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
		'"bad":%d,"lost":%d,"empty":%d,"late":%d,"late_ms":%.1f,' ..
		'"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p99.9":%d,"max":%d}}\n',
		summary.requests, summary.duration, summary.bytes,
		err.connect, err.read, err.write, err.status, err.timeout,
		b, l, e, lt, ltms,
		latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
		latency:percentile(99.9), latency.max))
	f:close()
end
