-- mailpushd.lua: Dovecot's Lua push driver reporting message events to mailpushd.
--
-- Stock Dovecot (2.3.19 and later, Debian's dovecot-core included) runs this without
-- any C plugin. Every message event of a mailbox transaction (new mail, appends,
-- expunges, flag changes) is collected, and when the transaction commits, one
-- POST /notify per mailbox goes to mailpushd, in the xaps plugin's shape:
--
--   {"Username":"alice","Mailbox":"INBOX","Events": ["MessageNew"]}
--
-- New messages also carry what a Web Push client shows (uid, from, subject, date,
-- message-id), in a "Messages" list xapsd-style daemons ignore.
--
-- Settings (plugin { }): mailpushd_url (required, e.g. http://[::1]:11619/notify),
-- mailpushd_authorization (optional: the whole Authorization header value, such as
-- "Basic ZG92ZWNvdDpzZWNyZXQ=", when mailpushd has basic_auth set).

local http_client = nil

function script_init()
  http_client = dovecot.http.client({ timeout = 5000, max_attempts = 3 })
  return 0
end

-- JSON string, with the escapes RFC 8259 requires.
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
  return '"' .. escaped .. '"'
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

local function messages_json(messages)
  local out = {}
  for _, m in ipairs(messages) do
    table.insert(out, string.format(
      '{"Uid":%d,"UidValidity":%d,"From":%s,"Subject":%s,"Date":%s}',
      tonumber(m.uid) or 0, tonumber(m.uid_validity) or 0,
      json_string(m.from), json_string(m.subject), json_string(m.date)))
  end
  return "[" .. table.concat(out, ",") .. "]"
end

function dovecot_lua_notify_end_txn(ctx, success)
  if not success or #ctx.order == 0 then
    return
  end
  local url = ctx.user:plugin_getenv("mailpushd_url")
  if url == nil or url == "" then
    dovecot.i_error("mailpushd.lua: plugin setting mailpushd_url is not set")
    return
  end
  local authorization = ctx.user:plugin_getenv("mailpushd_authorization")
  for _, name in ipairs(ctx.order) do
    local mailbox = ctx.mailboxes[name]
    local events = {}
    for _, e in ipairs(mailbox.events) do
      table.insert(events, json_string(e))
    end
    local body = '{"Username":' .. json_string(ctx.user.username)
      .. ',"Mailbox":' .. json_string(name)
      .. ',"Events": [' .. table.concat(events, ",") .. ']'
    if #mailbox.messages > 0 then
      body = body .. ',"Messages":' .. messages_json(mailbox.messages)
    end
    body = body .. '}'
    local request = http_client:request({ url = url, method = "POST" })
    request:add_header("Content-Type", "application/json; charset=utf-8")
    if authorization ~= nil and authorization ~= "" then
      request:add_header("Authorization", authorization)
    end
    request:set_payload(body)
    local response = request:submit()
    local status = response:status()
    -- 404: the user has no device. Anything else outside 2xx is worth a log line.
    if (status < 200 or status >= 300) and status ~= 404 then
      dovecot.i_error("mailpushd.lua: " .. url .. " answered " .. status .. " " .. tostring(response:reason()))
    end
  end
end
