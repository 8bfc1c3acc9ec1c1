-- Docket's load scenarios for wrk. scripts/bench/run writes the actors file (signed-in people
-- with their project and some of their tickets) and names the scenario:
--   DOCKET_SCENARIO  list | get | create | update | comment | mixed | path | mail
--   DOCKET_PATH      for `path`: the GET every request sends (search, reports)
--   DOCKET_ACTORS    path of a Lua file returning { actors = { {token, project, list, tickets} } }
-- Each wrk thread takes every n-th ticket, so no two threads change the same ticket, and walks
-- its tickets round-robin, skipping one whose update has not been answered yet.
-- Versions for If-Match are learned from each answer that carries a ticket.

local scenario = os.getenv("DOCKET_SCENARIO")
local data = dofile(os.getenv("DOCKET_ACTORS"))
local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("thread_no", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

local tickets = {}   -- { id, actor, version } this thread may change
local versions = {}  -- ticket id -> last version seen
local next_ticket, next_actor, sent = 0, 0, 0

function init(args)
  local n = 0
  for _, actor in ipairs(data.actors) do
    for _, t in ipairs(actor.tickets) do
      n = n + 1
      if n % data.threads == thread_no then
        table.insert(tickets, { id = t[1], actor = actor })
        versions[t[1]] = t[2]
      end
    end
  end
  math.randomseed(thread_no * 7919 + os.time())
end

local function auth(actor, extra)
  local h = { ["Authorization"] = "Bearer " .. actor.token }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

local function key()
  sent = sent + 1
  return string.format("bench-%d-%d-%d-%d", thread_no, os.time(), math.random(1, 1e9), sent)
end

local busy = {}  -- tickets with an update in flight (a slow answer must not be overtaken)

local function pick_ticket(for_update)
  for _ = 1, #tickets do
    next_ticket = next_ticket % #tickets + 1
    local t = tickets[next_ticket]
    if not busy[t.id] then
      if for_update then busy[t.id] = true end
      return t
    end
  end
  return tickets[next_ticket]
end

local function pick_actor()
  next_actor = next_actor % #data.actors + 1
  return data.actors[next_actor]
end

local requests = {
  list = function()
    local a = pick_actor()
    return wrk.format("GET", "/api/v1/tickets?" .. a.list, auth(a))
  end,
  path = function()
    return wrk.format("GET", os.getenv("DOCKET_PATH"), auth(pick_actor()))
  end,
  get = function()
    local t = pick_ticket()
    return wrk.format("GET", "/api/v1/tickets/" .. t.id, auth(t.actor))
  end,
  create = function()
    local a = pick_actor()
    local body = string.format(
      '{"project_id":"%s","title":"Load test ticket %d","description":"Filed by the load generator.","priority":"high","labels":["bench"]}',
      a.project, sent)
    return wrk.format("POST", "/api/v1/tickets",
      auth(a, { ["Content-Type"] = "application/json", ["Idempotency-Key"] = key() }), body)
  end,
  update = function()
    local t = pick_ticket(true)
    local priorities = { "low", "medium", "high", "urgent" }
    local body = string.format('{"priority":"%s","title":"Updated by the load generator %d"}',
      priorities[math.random(1, 4)], sent)
    sent = sent + 1
    return wrk.format("PATCH", "/api/v1/tickets/" .. t.id,
      auth(t.actor, { ["Content-Type"] = "application/json",
                      ["If-Match"] = '"' .. versions[t.id] .. '"' }), body)
  end,
  comment = function()
    local t = pick_ticket()
    return wrk.format("POST", "/api/v1/tickets/" .. t.id .. "/comments",
      auth(t.actor, { ["Content-Type"] = "application/json", ["Idempotency-Key"] = key() }),
      '{"body":"A comment from the load generator."}')
  end,
  -- A customer's mail to an organisation's inbound address: a new ticket from one of 50
  -- customers per thread, with a quoted history to trim.
  mail = function()
    local a = pick_actor()
    local id = key()
    local who = sent % 50
    local raw = string.format(
      "From: Customer %d <customer-%d-%d@bench.test>\r\nTo: Help <help@bench.test>\r\n" ..
      "Subject: Printer %s is out of toner\r\nMessage-ID: <%s@bench.test>\r\n" ..
      "Content-Type: text/plain; charset=utf-8\r\n\r\n" ..
      "The printer on the third floor is out of toner again.\r\nCan someone look?\r\n\r\n" ..
      "On Mon, 7 Dec 2026, Help <help@bench.test> wrote:\r\n> We replaced it last week.\r\n",
      who, thread_no, who, id, id)
    return wrk.format("POST", a.inbound, { ["Content-Type"] = "message/rfc822" }, raw)
  end,
}

-- 80% reads (half lists, half single tickets), 20% writes.
local mix = { "list", "list", "list", "list", "get", "get", "get", "get", "create", "update" }
local mixed_writes = { "create", "update", "comment" }

function request()
  if scenario == "mixed" then
    local kind = mix[math.random(1, #mix)]
    if kind == "create" or kind == "update" then
      kind = mixed_writes[math.random(1, #mixed_writes)]
    end
    return requests[kind]()
  end
  return requests[scenario]()
end

failures = {}  -- status -> count, read by done() from every thread

function response(status, headers, body)
  if status >= 300 then
    failures[status] = (failures[status] or 0) + 1
  end
  -- A ticket in the answer (get, create, update): remember its version.
  if status < 300 and body then
    local id = body:match('^{"id":"([0-9a-f%-]+)"')
      or body:match('"id":"([0-9a-f%-]+)","key"')
    local version = body:match('"version":(%d+)')
    if id and versions[id] then
      busy[id] = nil
      -- A read that started before an update may answer after it: keep the newest version.
      if version and tonumber(version) > versions[id] then
        versions[id] = tonumber(version)
      end
    end
  end
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  local by_status = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("failures") or {}) do
      by_status[status] = (by_status[status] or 0) + n
    end
  end
  local statuses = {}
  for status, n in pairs(by_status) do
    table.insert(statuses, string.format('"%d":%d', status, n))
  end
  io.write(string.format(
    'DOCKET_RESULT {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.2f,"p95_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f,"non_2xx":%d,"socket_errors":%d,"failures":{%s}}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect + e.read + e.write + e.timeout, table.concat(statuses, ",")))
end
