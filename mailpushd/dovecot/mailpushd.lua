-- mailpushd.lua: Dovecot's Lua push driver reporting message events to mailpushd.
--
-- One file for Dovecot 2.3 (2.3.19 and later) and 2.4: stock Dovecot runs it without any
-- C plugin (Debian's dovecot-core has the driver). Every message event of a mailbox
-- transaction (new mail, appends, expunges, flag changes) is collected, and when the
-- transaction commits, one POST per mailbox goes to mailpushd, in the xaps plugin's shape:
--
--   {"Username":"alice","Mailbox":"INBOX","Events":["MessageNew"],"Messages":[...]}
--
-- New messages also carry what a Web Push client shows, in a "Messages" list that
-- xapsd-style daemons ignore: Uid, UidValidity, From (the From header's value, as the
-- message has it), Subject (decoded to UTF-8 by Dovecot), Date (the Date header's time
-- and zone, written as RFC 5322 writes them: Dovecot hands the script the parsed date,
-- not its text) and MessageId.
--
-- Settings. Dovecot 2.4 (2.4/90-mailpushd.conf):
--   push_notification mailpushd { lua_settings { mailpushd_url = ... } }
-- Dovecot 2.3 (2.3/90-mailpushd.conf):
--   plugin { mailpushd_url = ... }
--
--   mailpushd_url            required: mailpushd's /notify, e.g. http://[::1]:11619/notify
--   mailpushd_authorization  optional: the whole Authorization header value, such as
--                            "Basic ZG92ZWNvdDpzZWNyZXQ=", when mailpushd asks for one
--   mailpushd_timeout_secs   optional: seconds to wait for each attempt (default 5)
--   mailpushd_attempts       optional: attempts per report (default 3)
--
-- Dovecot loads the script anew for each user it serves: an IMAP session, one
-- recipient of a delivery. What the script keeps (its settings, whether mailpushd
-- answered) lasts that long.
--
-- While mailpushd does not answer (down, or hung), a delivery waits for its report:
-- mailpushd_timeout_secs for each of mailpushd_attempts. Once a report got no answer,
-- the user's next reports are tried once each, until one is answered: each event is
-- still tried, and a session moving or flagging mail then waits one timeout per
-- change, not all the attempts.
--
-- Which Dovecot runs it is told by what script_init receives: 2.4 hands it the
-- lua_settings table, 2.3 nothing (its settings are read from the user's plugin { }).
-- When it first reports an event, the script logs one line ("mailpushd.lua:
-- reporting mail events to ..."), or, when a setting is missing or wrong, one error
-- that names it; it then reports nothing for that user until the setting is fixed
-- and Dovecot reloaded.

local DEFAULT_TIMEOUT_SECS = 5
local DEFAULT_ATTEMPTS = 3

-- What script_init received (2.4), or nil (2.3: read from the user's plugin settings).
local init_settings = nil
-- The configuration once read and checked: { url, authorization, client, once }, or
-- false after an error was logged (so it is logged once, not at every event).
local ready = nil
-- The last report got no answer from mailpushd: the next ones are tried once.
local unanswered = false

-- Dovecot's own statuses for a request that got no answer (connect failed, timed out,
-- connection lost...) are from 9000 on; an HTTP status is below.
local NO_ANSWER = 9000

-- A positive whole number in a setting, or nil and the reason.
local function whole(name, text, default, max)
  if text == nil or text == "" then
    return default
  end
  local n = tonumber(text)
  if n == nil or n ~= math.floor(n) or n < 1 or n > max then
    return nil, name .. " = " .. tostring(text) .. " is not a whole number from 1 to " .. max
  end
  return math.floor(n)
end

-- The URL as logged: a user name and password in it are not.
local function shown(url)
  -- The user information ends at the authority's last "@" (RFC 3986).
  return (url:gsub("^(%a[%w+.-]*://)[^/?#]*@", "%1<redacted>@"))
end

-- Reads and checks the settings through `get(name)`; makes the HTTP client with the
-- option names of the running Dovecot. Logs one line either way.
local function configure(get, version)
  local url = get("mailpushd_url")
  local where = version == "2.4" and "push_notification mailpushd { lua_settings { } }" or "plugin { }"
  local function fail(reason)
    dovecot.i_error("mailpushd.lua: " .. reason .. " (in " .. where
      .. "): no mail event reaches mailpushd until it is fixed and Dovecot reloaded")
    ready = false
    return false
  end
  if url == nil or url == "" then
    return fail("mailpushd_url is not set")
  end
  if not (url:match("^http://") or url:match("^https://")) then
    return fail("mailpushd_url = " .. shown(url) .. " is not an http:// or https:// URL")
  end
  local timeout, why = whole("mailpushd_timeout_secs", get("mailpushd_timeout_secs"),
    DEFAULT_TIMEOUT_SECS, 300)
  if timeout == nil then return fail(why) end
  local attempts
  attempts, why = whole("mailpushd_attempts", get("mailpushd_attempts"), DEFAULT_ATTEMPTS, 10)
  if attempts == nil then return fail(why) end
  -- 2.4 takes the http_client_* setting names without the prefix, times with a unit,
  -- and refuses any other key; 2.3 has a fixed list and ignores unknown keys.
  local function options(tries)
    if version == "2.4" then
      return { request_timeout = timeout .. "s", request_max_attempts = tries }
    end
    return { request_timeout_msecs = timeout * 1000, max_attempts = tries }
  end
  local ok, client = pcall(dovecot.http.client, options(attempts))
  local once
  if ok then
    ok, once = pcall(dovecot.http.client, options(1))
    if not ok then client = once end
  end
  if not ok then
    return fail("Dovecot's HTTP client refused the options: " .. tostring(client))
  end
  -- A URL Dovecot's HTTP client cannot take would fail every report, each in
  -- Dovecot's words, which show a password in the URL: said once here instead.
  if not pcall(client.request, client, { url = url, method = "POST" }) then
    return fail("mailpushd_url = " .. shown(url) .. " is not a URL Dovecot's HTTP client takes")
  end
  local authorization = get("mailpushd_authorization")
  if authorization == "" then authorization = nil end
  ready = { url = url, shown = shown(url), authorization = authorization, client = client,
            once = once }
  dovecot.i_info("mailpushd.lua: reporting mail events to " .. ready.shown .. " (Dovecot " .. version
    .. " settings; " .. timeout .. " s per attempt, " .. attempts .. " attempts"
    .. (authorization and ", with an Authorization header" or "") .. ")")
  return true
end

function script_init(settings)
  if type(settings) == "table" then
    -- Dovecot 2.4. Read at first use, not here: LMTP also starts the driver for the
    -- message it parses, which reports nothing, and its line would only repeat this one.
    init_settings = settings
  end
  -- 2.3 needs 0; 2.4 ignores what is returned.
  return 0
end

-- JSON string, with the escapes RFC 8259 requires. Octets that are not UTF-8 (an 8-bit
-- header in another charset) are read as Latin-1, so the body stays valid JSON.
local function json_string(text)
  text = tostring(text or "")
  local escaped = text:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' end
    if c == "\\" then return "\\\\" end
    if c == "\n" then return "\\n" end
    if c == "\r" then return "\\r" end
    if c == "\t" then return "\\t" end
    return string.format("\\u%04x", c:byte())
  end)
  -- Lua 5.3's utf8.len takes UTF-16 surrogates (ED A0..BF xx), which JSON does not.
  if utf8 ~= nil and (utf8.len(escaped) == nil or escaped:find("\237[\160-\191]")) then
    escaped = escaped:gsub("[\128-\255]", function(c)
      return string.format("\\u%04x", c:byte())
    end)
  end
  return '"' .. escaped .. '"'
end

local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }

-- The Date header's time and zone as RFC 5322 writes them ("Tue, 1 Dec 2026 21:39:06
-- +0100"), from the seconds since 1970 and the zone in minutes Dovecot gives; "" when
-- the message has no Date header Dovecot could read (it then gives 0).
local function rfc5322_date(seconds, zone)
  seconds, zone = tonumber(seconds), tonumber(zone) or 0
  if seconds == nil or seconds <= 0 then
    return ""
  end
  zone = math.floor(zone)
  local t = os.date("!*t", math.floor(seconds) + zone * 60)
  local sign = zone < 0 and "-" or "+"
  local offset = math.abs(zone)
  return string.format("%s, %d %s %04d %02d:%02d:%02d %s%02d%02d",
    DAYS[t.wday], t.day, MONTHS[t.month], t.year, t.hour, t.min, t.sec,
    sign, offset // 60, offset % 60)
end

function dovecot_lua_notify_begin_txn(user)
  return { user = user, mailboxes = {}, order = {} }
end

-- Notes one event: its name once per mailbox, in the order they came.
local function note(ctx, event)
  local name = event.mailbox or ""
  local mailbox = ctx.mailboxes[name]
  if mailbox == nil then
    mailbox = { events = {}, seen = {}, messages = {} }
    ctx.mailboxes[name] = mailbox
    table.insert(ctx.order, name)
  end
  if not mailbox.seen[event.name] then
    mailbox.seen[event.name] = true
    table.insert(mailbox.events, event.name)
  end
  if event.name == "MessageNew" and event.uid ~= nil then
    table.insert(mailbox.messages, event)
  end
end

function dovecot_lua_notify_event_message_new(ctx, event) note(ctx, event) end
function dovecot_lua_notify_event_message_append(ctx, event) note(ctx, event) end
function dovecot_lua_notify_event_message_expunge(ctx, event) note(ctx, event) end
function dovecot_lua_notify_event_message_read(ctx, event) note(ctx, event) end
function dovecot_lua_notify_event_message_trash(ctx, event) note(ctx, event) end
function dovecot_lua_notify_event_flags_set(ctx, event) note(ctx, event) end
function dovecot_lua_notify_event_flags_clear(ctx, event) note(ctx, event) end

-- The most of a header kept, in octets: a push shows far less, and a header of any
-- length (escaped, an octet may take six) must not make the event too large to take.
local MAX_HEADER = 1024

-- `text` cut to MAX_HEADER octets, not within a UTF-8 sequence.
local function header(text)
  text = tostring(text or "")
  if #text <= MAX_HEADER then
    return text
  end
  return (text:sub(1, MAX_HEADER):gsub("[\192-\255][\128-\191]*$", ""))
end

local function messages_json(messages)
  local out = {}
  for _, m in ipairs(messages) do
    table.insert(out, string.format(
      '{"Uid":%d,"UidValidity":%d,"From":%s,"Subject":%s,"Date":%s,"MessageId":%s}',
      math.floor(tonumber(m.uid) or 0), math.floor(tonumber(m.uid_validity) or 0),
      json_string(header(m.from)), json_string(header(m.subject)),
      json_string(rfc5322_date(m.date, m.tz)), json_string(header(m.message_id))))
  end
  return "[" .. table.concat(out, ",") .. "]"
end

function dovecot_lua_notify_end_txn(ctx, success)
  if not success or #ctx.order == 0 then
    return
  end
  if ready == nil then
    if init_settings ~= nil then
      configure(function(name) return init_settings[name] end, "2.4")
    else
      -- Dovecot 2.3: the settings are the user's plugin { } ones.
      configure(function(name) return ctx.user:plugin_getenv(name) end, "2.3")
    end
  end
  if not ready then
    return
  end
  for _, name in ipairs(ctx.order) do
    local mailbox = ctx.mailboxes[name]
    local events = {}
    for _, e in ipairs(mailbox.events) do
      table.insert(events, json_string(e))
    end
    local body = '{"Username":' .. json_string(ctx.user.username)
      .. ',"Mailbox":' .. json_string(name)
      .. ',"Events":[' .. table.concat(events, ",") .. ']'
    if #mailbox.messages > 0 then
      body = body .. ',"Messages":' .. messages_json(mailbox.messages)
    end
    body = body .. '}'
    local client = unanswered and ready.once or ready.client
    local request = client:request({ url = ready.url, method = "POST" })
    request:add_header("Content-Type", "application/json; charset=utf-8")
    if ready.authorization ~= nil then
      request:add_header("Authorization", ready.authorization)
    end
    request:set_payload(body)
    local response = request:submit()
    local status = response:status()
    local was_unanswered = unanswered
    unanswered = status >= NO_ANSWER
    -- 404 without a body: the user has no device. One with a body is mailpushd's answer
    -- to a path it has no route for (a wrong mailpushd_url): like anything else outside
    -- 2xx, worth a log line, since no event then reaches mailpushd.
    local no_device = status == 404 and response:payload() == ""
    if (status < 200 or status >= 300) and not no_device then
      local then_what = ""
      if unanswered and not was_unanswered then
        then_what = "; the next reports are tried once each until one is answered"
      end
      dovecot.i_error("mailpushd.lua: " .. ready.shown .. " answered " .. status .. " "
        .. tostring(response:reason()) .. " for " .. name .. ": this event is not pushed" .. then_what)
    end
  end
end
