-- wrk script for bench/compare.ts: POST one JPEG as multipart/form-data under a
-- new name each time (wrk's Lua has no crypto, so names are a prefix, the thread
-- number and a per-thread counter), and count the answers by status: only 201s
-- are uploads; any other status makes the run invalid, and the caller says so.
--
--   UPLOAD_FILE=photo.jpg UPLOAD_PREFIX=r1 wrk -t2 -c16 -d10s -s bench/upload.lua http://127.0.0.1:PORT/api/v1/albums/A/images
--
-- Prints one line `upload-statuses {"201":N,...}` when wrk is done.

local file = os.getenv("UPLOAD_FILE")
local prefix = os.getenv("UPLOAD_PREFIX") or "u"
local threads = {}
local next_thread = 1

function setup(thread)
  thread:set("thread_no", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(file, "rb"))
  jpeg = f:read("*all")
  f:close()
  local boundary = "----imagestore-bench-" .. thread_no
  head = "--" .. boundary .. "\r\nContent-Disposition: form-data; name=\"file\"; filename=\""
  mid = "\"\r\nContent-Type: image/jpeg\r\n\r\n"
  tail = "\r\n--" .. boundary .. "--\r\n"
  -- wrk's -H headers, plus the body's type.
  headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Content-Type"] = "multipart/form-data; boundary=" .. boundary
  sent = 0
  statuses = {}
end

function request()
  sent = sent + 1
  local name = prefix .. "-t" .. thread_no .. "-" .. sent .. ".jpg"
  return wrk.format("POST", nil, headers, head .. name .. mid .. jpeg .. tail)
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      totals[status] = (totals[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(totals) do
    table.insert(parts, string.format("%q:%d", status, count))
  end
  io.write("upload-statuses {" .. table.concat(parts, ",") .. "}\n")
end
